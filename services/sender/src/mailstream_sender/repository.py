"""Sender's collections: the state of each send (`sender_deliveries`), the exact bytes of each mail
(`sender_mails`, insert-only, so that the state records updated twice per mail stay small) and the suppression
list (`sender_suppressions`). All queries live here.

Concurrency is MongoDB's single-document atomicity: a record is created by an insert on its unique `_id` (the
message id), and every later state change is a conditional update that never moves a final record (`sent`,
`failed`) again. Retention is a TTL index: a record gets `expires_at` when it becomes final, its mail when it is
stored (late enough to outlive the record).

Writes are retried a few times on connection errors: losing the write that records `sent` would make the
redelivered command send the mail again.
"""

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, TypeVar
from uuid import uuid4

from prometheus_client import Histogram
from pymongo import ASCENDING, IndexModel, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import AutoReconnect, DuplicateKeyError, NetworkTimeout

from mailstream_common.contracts import utcnow

DELIVERIES = "sender_deliveries"
MAILS = "sender_mails"
SUPPRESSIONS = "sender_suppressions"

INDEXES = {
    DELIVERIES: [
        IndexModel([("account_id", ASCENDING)]),
        # Only final records have an expiry: records still in work stay out of the index.
        IndexModel(
            [("expires_at", ASCENDING)],
            expireAfterSeconds=0,
            partialFilterExpression={"expires_at": {"$exists": True}},
            name="deliveries_expiry",
        ),
    ],
    MAILS: [IndexModel([("expires_at", ASCENDING)], expireAfterSeconds=0, name="mails_expiry")],
    SUPPRESSIONS: [IndexModel([("account_id", ASCENDING), ("address", ASCENDING)], unique=True)],
}

RECORD_WRITE_SECONDS = Histogram(
    "mailstream_sender_record_write_seconds",
    "Time of one delivery write: begin (sending), mail (the signed bytes, once per mail) or finish (the outcome)",
    ["step"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)

T = TypeVar("T")


async def with_retries(operation: Callable[[], Awaitable[T]], attempts: int = 8) -> T:
    """Run a database write, retrying connection errors with a short jittered backoff (~2.5 s in all)."""
    delay = 0.02
    for attempt in range(1, attempts + 1):
        try:
            return await operation()
        except (AutoReconnect, NetworkTimeout):
            if attempt == attempts:
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
    raw_kept: bool = False  # the outcome was reported with the mail's bytes, which `Mails` holds

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
            raw_kept=doc.get("raw_kept", False),
        )


@dataclass(frozen=True)
class StoredMail:
    raw: bytes
    signing_note: str


class Mails:
    """The exact bytes of each outgoing mail (and how they were signed), by message id: inserted once, before the
    mail's first SMTP transaction, and never updated, so every attempt (a retry, a redelivery after a crash, a
    competing worker) sends the same bytes, and a re-report carries them. Kept apart from `sender_deliveries`, so
    that the record's state updates do not rewrite the mail. Expires (`expires_at`, given by the caller) no earlier
    than its record can."""

    def __init__(self, db: AsyncDatabase) -> None:
        self.collection = db[MAILS]

    async def get(self, message_id: str) -> StoredMail | None:
        doc = await self.collection.find_one({"_id": message_id}, {"raw": 1, "signing_note": 1})
        return None if doc is None else StoredMail(bytes(doc["raw"]), doc.get("signing_note", ""))

    async def keep(
        self, message_id: str, account_id: str, raw: bytes, signing_note: str, *, expires_at: datetime
    ) -> StoredMail:
        """Store the mail unless it is stored already; the stored one (another worker's, if it was first)."""
        document = {
            "_id": message_id,
            "account_id": account_id,
            "raw": raw,
            "signing_note": signing_note,
            "created_at": utcnow(),
            "expires_at": expires_at,
        }
        with RECORD_WRITE_SECONDS.labels("mail").time():
            try:
                await with_retries(lambda: self.collection.insert_one(document))
                return StoredMail(raw, signing_note)
            except DuplicateKeyError:
                pass
        return await self.get(message_id) or StoredMail(raw, signing_note)  # expired meanwhile: only if very old


class Deliveries:
    """One document per outbound message id: `sending` around the SMTP transaction, then `sent`/`failed`
    (final) or `deferred` (a temporary failure; the command is on a retry queue). A final record is never changed
    again, and expires (`expires_at`, TTL index) the retention after it became final."""

    def __init__(self, db: AsyncDatabase) -> None:
        self.collection = db[DELIVERIES]

    async def get(self, message_id: str) -> DeliveryRecord | None:
        doc = await self.collection.find_one({"_id": message_id})
        return None if doc is None else DeliveryRecord.from_document(doc)

    async def sent_to(self, message_id: str) -> tuple[str, list[str]] | None:
        """(account id, recipients) of a message this service recorded; None if it has no record."""
        doc = await self.collection.find_one({"_id": message_id}, {"account_id": 1, "recipients": 1})
        if doc is None or doc.get("account_id") is None:
            return None
        return doc["account_id"], list(doc.get("recipients", []))

    async def begin_attempt(
        self, message_id: str, account_id: str, recipients: list[str]
    ) -> tuple[DeliveryRecord, bool]:
        """Mark the send in progress (counting the attempt) unless it is already final; return the record, and
        whether this was the command's first attempt (the record was inserted: no mail can be stored for it yet).

        A command's first attempt is one insert (the unique `_id` makes it atomic: of concurrent first attempts
        exactly one inserts). Only when the record exists (a retry, a redelivery, the losers of that race) does the
        conditional update run: `sending` again, attempts + 1, unless it is final."""
        with RECORD_WRITE_SECONDS.labels("begin").time():
            return await self._begin_attempt(message_id, account_id, recipients)

    async def _begin_attempt(
        self, message_id: str, account_id: str, recipients: list[str]
    ) -> tuple[DeliveryRecord, bool]:
        now = utcnow()
        first = {
            "_id": message_id,
            "state": "sending",
            "attempts": 1,
            "account_id": account_id,
            "recipients": recipients,
            "created_at": now,
            "updated_at": now,
        }
        for _ in range(3):
            try:
                await with_retries(lambda: self.collection.insert_one(dict(first)))
                return DeliveryRecord.from_document(first), True
            except DuplicateKeyError:
                pass
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
                    },
                    return_document=ReturnDocument.AFTER,
                )
            ) or await self.collection.find_one({"_id": message_id})  # not matched: it is final
            if doc is not None:
                return DeliveryRecord.from_document(doc), False
            # Expired between the insert and the update (it was final and old): insert again.
        raise RuntimeError(f"delivery record {message_id} kept vanishing")

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
        raw_kept: bool = False,
        expires_at: datetime | None = None,
    ) -> bool:
        """Record an outcome (sent/failed are final, with their `expires_at`; deferred is not) unless the record is
        final already (another worker's outcome came first: it stays). Whether this outcome was recorded.
        `raw_kept`: the outcome's report carries the mail's bytes (stored in `Mails`, not here)."""
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
        if raw_kept:
            fields["raw_kept"] = True
        if state in FINAL_STATES:
            assert expires_at is not None, "a final record needs its expiry"
            fields["expires_at"] = expires_at
        with RECORD_WRITE_SECONDS.labels("finish").time():
            return await self._finish(message_id, fields)

    async def _finish(self, message_id: str, fields: dict[str, Any]) -> bool:
        # An upsert guarded by the state: a record in work is updated, a missing one (deleted by hand) inserted, and
        # a final one makes the insert collide on `_id`, which leaves it as it is.
        try:
            await with_retries(
                lambda: self.collection.update_one(
                    {"_id": message_id, "state": {"$nin": list(FINAL_STATES)}},
                    {"$set": fields, "$setOnInsert": {"created_at": utcnow(), "attempts": 0}},
                    upsert=True,
                )
            )
        except DuplicateKeyError:
            return False
        return True


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
            if doc is None:  # SecantusDB 0.7 may apply a racing upsert yet return no document: read it
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
        cursor = self.collection.find(
            {"account_id": account_id, "address": {"$in": [a.lower() for a in addresses]}, "suppressed": True}
        )
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
