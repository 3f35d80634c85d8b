"""Mongo queries of the domains service: collections `domains` and `domain_keys`.

A domain document holds the last check of each record (`checks`, keyed `spf`, `dmarc`, `dkim:<selector>`), the
SPF records seen at that check (so the merged SPF value can be shown) and the re-check schedule. A key document
holds one key generation: the RSA key, an optional Ed25519 key, their encrypted private keys and the rotation
state (pending -> active -> retiring -> retired), changed only by a conditional update from the expected state.

A scheduled check is taken with one `find_one_and_update` on the domain itself: it moves `next_check_at` a lease
ahead and stamps an owner token (`check_lease`), so exactly one replica takes a due check, and a replica that dies
mid-check leaves a domain that is simply due again when the lease runs out. Only the owner's result write clears
the lease.
"""

from datetime import datetime, timedelta
from typing import Any

from pymongo import ASCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

DOMAINS = "domains"
DOMAIN_KEYS = "domain_keys"

CHECK_LEASE = timedelta(minutes=10)  # far longer than a check (its DNS lookups are time-boxed)
LIVE_KEY_STATES = ("pending", "active", "retiring")
# What may leave the repository for anything but signing: no encrypted private key either.
_PUBLIC_KEY_FIELDS = {"private_key_encrypted": 0, "ed25519.private_key_encrypted": 0}


class Duplicate(Exception):
    """An insert that a unique index refused: the account has the domain already, or a pending key exists."""


class DomainRepository:
    def __init__(self, db: AsyncDatabase) -> None:
        self.domains = db[DOMAINS]
        self.keys = db[DOMAIN_KEYS]

    async def insert_domain(self, domain: dict[str, Any]) -> None:
        try:
            await self.domains.insert_one(domain)
        except DuplicateKeyError:
            raise Duplicate(domain["name"]) from None

    async def insert_key(self, key: dict[str, Any]) -> None:
        try:
            await self.keys.insert_one(key)
        except DuplicateKeyError:
            raise Duplicate(key["selector"]) from None

    async def domain(self, account_id: str, domain_id: str) -> dict[str, Any] | None:
        return await self.domains.find_one({"_id": domain_id, "account_id": account_id})

    async def domain_by_name(
        self, account_id: str, name: str, fields: list[str] | None = None
    ) -> dict[str, Any] | None:
        return await self.domains.find_one({"account_id": account_id, "name": name}, fields)

    async def list_domains(self, account_id: str, *, after_name: str | None, limit: int) -> list[dict[str, Any]]:
        query: dict[str, Any] = {"account_id": account_id}
        if after_name is not None:
            query["name"] = {"$gt": after_name}
        return await self.domains.find(query).sort("name", ASCENDING).limit(limit).to_list()

    async def live_keys(self, domain_id: str) -> list[dict[str, Any]]:
        """The domain's keys whose records must stay published (newest last), without private keys."""
        cursor = self.keys.find({"domain_id": domain_id, "state": {"$in": list(LIVE_KEY_STATES)}}, _PUBLIC_KEY_FIELDS)
        return await cursor.sort("created_at", ASCENDING).to_list()

    async def live_keys_of(self, domain_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
        """`live_keys` of several domains in one query: domain id -> its keys (newest last)."""
        found: dict[str, list[dict[str, Any]]] = {domain_id: [] for domain_id in domain_ids}
        cursor = self.keys.find(
            {"domain_id": {"$in": domain_ids}, "state": {"$in": list(LIVE_KEY_STATES)}}, _PUBLIC_KEY_FIELDS
        ).sort("created_at", ASCENDING)
        async for key in cursor:
            found[key["domain_id"]].append(key)
        return found

    async def selectors(self, domain_id: str) -> list[str]:
        return [k["selector"] async for k in self.keys.find({"domain_id": domain_id}, {"selector": 1})]

    async def active_key_with_secret(self, account_id: str, domain_id: str, selector: str) -> dict[str, Any] | None:
        """The one read that includes the encrypted private keys: for the signing-key endpoint only."""
        return await self.keys.find_one(
            {"domain_id": domain_id, "selector": selector, "account_id": account_id, "state": "active"}
        )

    async def move_key(self, key_id: str, *, from_state: str, to_state: str, at: datetime) -> bool:
        """A conditional state change: of concurrent callers making the same transition, exactly one gets True."""
        stamp = {"active": "activated_at", "retiring": "retiring_since", "retired": "retired_at"}[to_state]
        result = await self.keys.update_one(
            {"_id": key_id, "state": from_state}, {"$set": {"state": to_state, stamp: at}}
        )
        return result.modified_count == 1

    async def update_domain(
        self, domain_id: str, fields: dict[str, Any], *, lease_owner: str | None = None
    ) -> dict[str, Any] | None:
        """Set `fields`; with `lease_owner`, only while that check still holds the lease, which it then releases.
        None when the domain is gone or the lease was taken over."""
        if lease_owner is None:
            return await self.domains.find_one_and_update(
                {"_id": domain_id}, {"$set": fields}, return_document=ReturnDocument.AFTER
            )
        return await self.domains.find_one_and_update(
            {"_id": domain_id, "check_lease.owner": lease_owner},
            {"$set": fields, "$unset": {"check_lease": ""}},
            return_document=ReturnDocument.AFTER,
        )

    async def delete_domain(self, account_id: str, domain_id: str) -> bool:
        result = await self.domains.delete_one({"_id": domain_id, "account_id": account_id})
        await self.keys.delete_many({"domain_id": domain_id, "account_id": account_id})
        return result.deleted_count == 1

    async def take_due_check(self, now: datetime, owner: str, lease: timedelta = CHECK_LEASE) -> dict[str, Any] | None:
        """The most overdue domain whose check is due, taken for `owner` until `now + lease` (it is not due again
        before then); None when nothing is due. Concurrent callers never get the same domain for one due time."""
        return await self.domains.find_one_and_update(
            {"next_check_at": {"$lte": now}},
            {"$set": {"next_check_at": now + lease, "check_lease": {"owner": owner, "until": now + lease}}},
            sort=[("next_check_at", ASCENDING)],
            return_document=ReturnDocument.BEFORE,
        )
