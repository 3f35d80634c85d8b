"""Mongo queries of the domains service: collections `domains` and `domain_keys`.

A domain document holds the last check of each record (`checks`, keyed `spf`, `dmarc`, `dkim:<selector>`), the
SPF records seen at that check (so the merged SPF value can be shown) and the re-check schedule. A key document
holds one key generation: the RSA key, an optional Ed25519 key, their encrypted private keys and the rotation
state (pending -> active -> retiring -> retired). `domain_check_claims` makes each scheduled check run on one
replica only.
"""

from datetime import datetime, timedelta
from typing import Any

from pymongo import ASCENDING, IndexModel, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

DOMAINS = "domains"
DOMAIN_KEYS = "domain_keys"
DOMAIN_CHECK_CLAIMS = "domain_check_claims"

INDEXES: dict[str, list[IndexModel]] = {
    DOMAINS: [
        IndexModel([("account_id", ASCENDING), ("name", ASCENDING)], unique=True),
        IndexModel([("next_check_at", ASCENDING)]),
    ],
    DOMAIN_KEYS: [
        IndexModel([("domain_id", ASCENDING), ("selector", ASCENDING)], unique=True),
        IndexModel([("account_id", ASCENDING), ("domain_id", ASCENDING), ("state", ASCENDING)]),
    ],
    DOMAIN_CHECK_CLAIMS: [IndexModel([("domain_id", ASCENDING)])],
}

STALE_CLAIM = timedelta(minutes=10)  # far longer than a check (its DNS lookups are time-boxed)
LIVE_KEY_STATES = ("pending", "active", "retiring")
# What may leave the repository for anything but signing: no encrypted private key either.
_PUBLIC_KEY_FIELDS = {"private_key_encrypted": 0, "ed25519.private_key_encrypted": 0}


class DomainRepository:
    def __init__(self, db: AsyncDatabase) -> None:
        self.domains = db[DOMAINS]
        self.keys = db[DOMAIN_KEYS]
        self.claims = db[DOMAIN_CHECK_CLAIMS]

    async def insert_domain(self, domain: dict[str, Any]) -> None:
        await self.domains.insert_one(domain)

    async def insert_key(self, key: dict[str, Any]) -> None:
        await self.keys.insert_one(key)

    async def domain(self, account_id: str, domain_id: str) -> dict[str, Any] | None:
        return await self.domains.find_one({"_id": domain_id, "account_id": account_id})

    async def domain_by_name(self, account_id: str, name: str) -> dict[str, Any] | None:
        return await self.domains.find_one({"account_id": account_id, "name": name})

    async def list_domains(self, account_id: str, *, after_name: str | None, limit: int) -> list[dict[str, Any]]:
        query: dict[str, Any] = {"account_id": account_id}
        if after_name is not None:
            query["name"] = {"$gt": after_name}
        return await self.domains.find(query).sort("name", ASCENDING).limit(limit).to_list()

    async def live_keys(self, domain_id: str) -> list[dict[str, Any]]:
        """The domain's keys whose records must stay published (newest last), without private keys."""
        cursor = self.keys.find({"domain_id": domain_id, "state": {"$in": list(LIVE_KEY_STATES)}}, _PUBLIC_KEY_FIELDS)
        return await cursor.sort("created_at", ASCENDING).to_list()

    async def selectors(self, domain_id: str) -> list[str]:
        return [k["selector"] async for k in self.keys.find({"domain_id": domain_id}, {"selector": 1})]

    async def active_key_with_secret(self, account_id: str, domain_id: str) -> dict[str, Any] | None:
        """The one read that includes the encrypted private keys: for the signing-key endpoint only."""
        return await self.keys.find_one({"account_id": account_id, "domain_id": domain_id, "state": "active"})

    async def move_key(self, key_id: str, *, from_state: str, to_state: str, at: datetime) -> bool:
        """A conditional state change, so a concurrent check cannot apply the same transition twice."""
        stamp = {"active": "activated_at", "retiring": "retiring_since", "retired": "retired_at"}[to_state]
        result = await self.keys.update_one(
            {"_id": key_id, "state": from_state}, {"$set": {"state": to_state, stamp: at}}
        )
        return result.modified_count == 1

    async def update_domain(self, domain_id: str, fields: dict[str, Any]) -> dict[str, Any] | None:
        return await self.domains.find_one_and_update(
            {"_id": domain_id}, {"$set": fields}, return_document=ReturnDocument.AFTER
        )

    async def delete_domain(self, account_id: str, domain_id: str) -> bool:
        result = await self.domains.delete_one({"_id": domain_id, "account_id": account_id})
        await self.keys.delete_many({"domain_id": domain_id, "account_id": account_id})
        await self.claims.delete_many({"domain_id": domain_id})
        return result.deleted_count == 1

    async def due_domains(self, now: datetime, limit: int) -> list[dict[str, Any]]:
        return await self.domains.find({"next_check_at": {"$lte": now}}).sort("next_check_at").limit(limit).to_list()

    async def claim_check(self, domain: dict[str, Any], now: datetime) -> bool:
        """Claim the scheduled check of `domain` (one per `next_check_at` slot) for this replica.

        A unique `_id` insert, not a find-and-modify: FerretDB v1 does not make find-and-modify atomic, and the
        unique key is what every idempotent write here relies on.
        """
        slot = domain["next_check_at"]
        claim_id = f"{domain['_id']}:{slot.isoformat(timespec='milliseconds')}"
        try:
            await self.claims.insert_one({"_id": claim_id, "domain_id": domain["_id"], "claimed_at": now})
        except DuplicateKeyError:
            # A replica that died mid-check leaves its claim behind: take over once the claim is stale.
            stale = await self.claims.delete_one({"_id": claim_id, "claimed_at": {"$lt": now - STALE_CLAIM}})
            if stale.deleted_count != 1:
                return False
            try:
                await self.claims.insert_one({"_id": claim_id, "domain_id": domain["_id"], "claimed_at": now})
            except DuplicateKeyError:
                return False
        await self.claims.delete_many({"domain_id": domain["_id"], "_id": {"$ne": claim_id}})
        return True
