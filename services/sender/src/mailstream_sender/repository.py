"""Sender's collections: the state of each send (`sender_deliveries`) and the suppression list
(`sender_suppressions`). All queries live here.

Writes are retried a few times on transient database errors: FerretDB on SQLite answers concurrent writers with
"database is locked (SQLITE_BUSY)", and losing the write that records `sent` would make the redelivered command
send the mail again.
"""

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, TypeVar
from uuid import uuid4

from pymongo import ASCENDING, IndexModel, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import AutoReconnect, DuplicateKeyError, NetworkTimeout, OperationFailure

from mailstream_common.contracts import utcnow

DELIVERIES = "sender_deliveries"
SUPPRESSIONS = "sender_suppressions"

INDEXES = {
    DELIVERIES: [IndexModel([("account_id", ASCENDING)])],
    SUPPRESSIONS: [IndexModel([("account_id", ASCENDING), ("address", ASCENDING)], unique=True)],
}

T = TypeVar("T")
_TRANSIENT_MARKERS = ("database is locked", "SQLITE_BUSY")


def _transient(exc: Exception) -> bool:
    if isinstance(exc, (AutoReconnect, NetworkTimeout)):
        return True
    return isinstance(exc, OperationFailure) and any(m in str(exc) for m in _TRANSIENT_MARKERS)


async def with_retries(operation: Callable[[], Awaitable[T]], attempts: int = 8) -> T:
    """Run a database write, retrying transient failures with a short jittered backoff (~2.5 s in all)."""
    delay = 0.02
    for attempt in range(1, attempts + 1):
        try:
            return await operation()
        except (OperationFailure, AutoReconnect, NetworkTimeout) as exc:
            if isinstance(exc, DuplicateKeyError) or attempt == attempts or not _transient(exc):
                raise
            await asyncio.sleep(delay * (1 + random.random()))  # noqa: S311 - jitter, not crypto
            delay = min(delay * 2, 0.5)
    raise AssertionError("unreachable")


DeliveryState = Literal["sending", "deferred", "sent", "failed"]
FINAL_STATES = ("sent", "failed")


@dataclass(frozen=True)
class DeliveryRecord:
    message_id: str
    account_id: str | None
    state: DeliveryState
    attempts: int
    recipients: list[str]
    relay_queue_id: str | None = None
    detail: str = ""
    smtp_code: int | None = None
    permanent: bool = False
    raw: bytes | None = None

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> "DeliveryRecord":
        return cls(
            message_id=doc["_id"],
            account_id=doc.get("account_id"),
            state=doc["state"],
            attempts=doc.get("attempts", 0),
            recipients=list(doc.get("recipients", [])),
            relay_queue_id=doc.get("relay_queue_id"),
            detail=doc.get("detail", ""),
            smtp_code=doc.get("smtp_code"),
            permanent=doc.get("permanent", False),
            raw=doc.get("raw"),
        )


class Deliveries:
    """One document per outbound message id: `sending` around the SMTP transaction, then `sent`/`failed`
    (final) or `deferred` (a temporary failure; the command is on a retry queue)."""

    def __init__(self, db: AsyncDatabase) -> None:
        self.collection = db[DELIVERIES]

    async def get(self, message_id: str) -> DeliveryRecord | None:
        doc = await self.collection.find_one({"_id": message_id})
        return None if doc is None else DeliveryRecord.from_document(doc)

    async def begin_attempt(self, message_id: str, account_id: str, recipients: list[str]) -> DeliveryRecord:
        """Mark the send in progress (counting the attempt) unless it is already final; return the record."""
        now = utcnow()
        try:
            doc = await with_retries(
                lambda: self.collection.find_one_and_update(
                    {"_id": message_id, "state": {"$nin": list(FINAL_STATES)}},
                    {
                        "$set": {
                            "state": "sending",
                            "updated_at": now,
                            "account_id": account_id,
                            "recipients": recipients,
                        },
                        "$inc": {"attempts": 1},
                        "$setOnInsert": {"created_at": now},
                    },
                    upsert=True,
                    return_document=ReturnDocument.AFTER,
                )
            )
        except DuplicateKeyError:  # it exists and is final: the upsert could not match it
            doc = await self.collection.find_one({"_id": message_id})
        assert doc is not None
        return DeliveryRecord.from_document(doc)

    async def finish(
        self,
        message_id: str,
        account_id: str,
        recipients: list[str],
        state: DeliveryState,
        *,
        detail: str,
        smtp_code: int | None = None,
        relay_queue_id: str | None = None,
        permanent: bool = False,
        raw: bytes | None = None,
    ) -> None:
        """Record an outcome (sent/failed are final; deferred is not). Creates the record for early refusals."""
        fields: dict[str, Any] = {
            "state": state,
            "updated_at": utcnow(),
            "account_id": account_id,
            "recipients": recipients,
            "detail": detail,
            "smtp_code": smtp_code,
            "relay_queue_id": relay_queue_id,
            "permanent": permanent,
        }
        if raw is not None:
            fields["raw"] = raw
        await with_retries(
            lambda: self.collection.update_one(
                {"_id": message_id},
                {"$set": fields, "$setOnInsert": {"created_at": utcnow(), "attempts": 0}},
                upsert=True,
            )
        )


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
    whether the address is suppressed. One document per pair, unique index on both."""

    def __init__(self, db: AsyncDatabase) -> None:
        self.collection = db[SUPPRESSIONS]

    async def _ensure(self, account_id: str, address: str) -> None:
        document = {
            "_id": uuid4().hex,
            "account_id": account_id,
            "address": address,
            "suppressed": False,
            "bounced_message_ids": [],
            "created_at": utcnow(),
        }
        with contextlib.suppress(DuplicateKeyError):
            await with_retries(lambda: self.collection.insert_one(document))

    async def record_hard_bounce(
        self, account_id: str, address: str, message_id: str, detail: str, threshold: int
    ) -> Suppression | None:
        """Count a hard bounce; suppress the address at `threshold`. Returns the suppression once it is one."""
        address = address.lower()
        await self._ensure(account_id, address)
        doc = await with_retries(
            lambda: self.collection.find_one_and_update(
                {"account_id": account_id, "address": address},
                {"$addToSet": {"bounced_message_ids": message_id}, "$set": {"last_bounce": detail[:500]}},
                return_document=ReturnDocument.AFTER,
            )
        )
        if doc is None:
            return None
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
        return Suppression.from_document(doc) if doc and doc.get("suppressed") else None

    async def suppress(self, account_id: str, address: str, reason: str) -> Suppression:
        address = address.lower()
        await self._ensure(account_id, address)
        doc = await with_retries(
            lambda: self.collection.find_one_and_update(
                {"account_id": account_id, "address": address},
                {"$set": {"suppressed": True, "source": "api", "reason": reason, "suppressed_at": utcnow()}},
                return_document=ReturnDocument.AFTER,
            )
        )
        assert doc is not None
        return Suppression.from_document(doc)

    async def find(self, account_id: str, addresses: list[str]) -> list[Suppression]:
        cursor = self.collection.find(
            {"account_id": account_id, "address": {"$in": [a.lower() for a in addresses]}, "suppressed": True}
        )
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
        return result.deleted_count == 1
