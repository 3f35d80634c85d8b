"""`sender_suppressions`: the per-account suppression list and the hard bounces that feed it."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from uuid import uuid4

from pymongo import ASCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from mailstream_common.contracts import utcnow
from mailstream_common.erasure import address_key

from .retries import with_retries

SUPPRESSIONS = "sender_suppressions"


@dataclass(frozen=True)
class Suppression:
    address: str
    reason: str
    source: Literal["bounces", "api"]
    hard_bounces: int
    created_at: datetime

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> "Suppression":
        return cls(
            address=doc["address"],
            reason=doc.get("reason", ""),
            source=doc.get("source", "api"),
            hard_bounces=len(doc.get("bounced_message_ids", [])),
            created_at=doc.get("suppressed_at") or doc["created_at"],
        )


class Suppressions:
    """Per (account, address): the hard bounces seen (by message id, so a redelivered bounce counts once) and
    whether the address is suppressed. One document per pair, unique index on both.

    `on_change` callbacks get the account id after every write (the guard's cache drops that account)."""

    def __init__(self, db: AsyncDatabase) -> None:
        self.collection = db[SUPPRESSIONS]
        self.on_change: list[Callable[[str], None]] = []
        # Set by main: an address kept after an erasure is stored as its keyed hash, which `find` also looks for.
        self.hash_secret: bytes | None = None

    def on_change_for(self, account_id: str) -> None:
        """Tell the callbacks that the account's list changed behind this object (an erasure)."""
        self._changed(account_id)

    def _changed(self, account_id: str) -> None:
        for callback in self.on_change:
            callback(account_id)

    async def _upsert(self, account_id: str, address: str, update: dict[str, Any]) -> dict[str, Any]:
        """Apply `update` to the (account, address) document, creating it first if need be; the document after.

        One upsert. Two first upserts of one pair at once: one inserts, the other's insert collides on the unique
        index and it runs again, now as a plain update of the document that exists."""
        update = {
            **update,
            "$setOnInsert": {"_id": uuid4().hex, "created_at": utcnow(), **update.get("$setOnInsert", {})},
        }
        query = {"account_id": account_id, "address": address}
        for attempt in (1, 2):
            try:
                doc = await with_retries(
                    lambda: self.collection.find_one_and_update(
                        query, update, upsert=True, return_document=ReturnDocument.AFTER
                    )
                )
            except DuplicateKeyError:
                if attempt == 2:
                    raise
                continue
            if doc is None:  # a racing upsert may be applied yet return no document: read it
                doc = await self.collection.find_one(query)
            assert doc is not None
            return doc
        raise AssertionError("unreachable")

    async def record_hard_bounce(
        self, account_id: str, address: str, message_id: str, detail: str, threshold: int
    ) -> Suppression | None:
        """Count a hard bounce; suppress the address at `threshold`. Returns the suppression once it is one."""
        address = address.lower()
        doc = await self._upsert(
            account_id,
            address,
            {
                "$addToSet": {"bounced_message_ids": message_id},
                "$set": {"last_bounce": detail[:500]},
                "$setOnInsert": {"suppressed": False},
            },
        )
        if not doc.get("suppressed") and len(doc.get("bounced_message_ids", [])) >= threshold:
            count, doc_id = len(doc["bounced_message_ids"]), doc["_id"]
            update = {
                "$set": {
                    "suppressed": True,
                    "source": "bounces",
                    "reason": f"hard bounced {count} times; last: {detail[:300]}",
                    "suppressed_at": utcnow(),
                }
            }
            doc = await with_retries(
                lambda: self.collection.find_one_and_update(
                    {"_id": doc_id, "suppressed": False}, update, return_document=ReturnDocument.AFTER
                )
            ) or await self.collection.find_one({"_id": doc_id})
        self._changed(account_id)
        return Suppression.from_document(doc) if doc and doc.get("suppressed") else None

    async def suppress(self, account_id: str, address: str, reason: str) -> Suppression:
        address = address.lower()
        doc = await self._upsert(
            account_id,
            address,
            {
                "$set": {"suppressed": True, "source": "api", "reason": reason, "suppressed_at": utcnow()},
                "$setOnInsert": {"bounced_message_ids": []},
            },
        )
        self._changed(account_id)
        return Suppression.from_document(doc)

    async def find(self, account_id: str, addresses: list[str]) -> list[Suppression]:
        wanted = [a.lower() for a in addresses]
        if self.hash_secret is not None:
            wanted += [address_key(self.hash_secret, a) for a in wanted]
        cursor = self.collection.find({"account_id": account_id, "address": {"$in": wanted}, "suppressed": True})
        return [Suppression.from_document(doc) async for doc in cursor]

    async def all_suppressed(self, account_id: str, *, limit: int) -> list[Suppression]:
        """The account's suppressed addresses, at most `limit` of them."""
        cursor = self.collection.find({"account_id": account_id, "suppressed": True}).limit(limit)
        return [Suppression.from_document(doc) async for doc in cursor]

    async def get(self, account_id: str, address: str) -> Suppression | None:
        found = await self.find(account_id, [address])
        return found[0] if found else None

    async def list(self, account_id: str, *, limit: int, after: str | None) -> list[Suppression]:
        query: dict[str, Any] = {"account_id": account_id, "suppressed": True}
        if after:
            query["address"] = {"$gt": after}
        cursor = self.collection.find(query).sort("address", ASCENDING).limit(limit)
        return [Suppression.from_document(doc) async for doc in cursor]

    async def remove(self, account_id: str, address: str) -> bool:
        """Lift a suppression; the bounce count starts again from zero."""
        result = await with_retries(
            lambda: self.collection.delete_one(
                {"account_id": account_id, "address": address.lower(), "suppressed": True}
            )
        )
        self._changed(account_id)
        return result.deleted_count == 1
