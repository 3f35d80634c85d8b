"""Sender's collections: the state of each send (`sender_deliveries`), the exact bytes of each mail
(`sender_mails`, insert-only, so that the state records updated twice per mail stay small) and the suppression
list (`sender_suppressions`). All queries live here.

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

from prometheus_client import Histogram
from pymongo import ASCENDING, IndexModel, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import AutoReconnect, DuplicateKeyError, NetworkTimeout, OperationFailure

from mailstream_common.contracts import utcnow

DELIVERIES = "sender_deliveries"
MAILS = "sender_mails"
SUPPRESSIONS = "sender_suppressions"

INDEXES = {
    DELIVERIES: [IndexModel([("account_id", ASCENDING)]), IndexModel([("updated_at", ASCENDING)])],  # retention
    SUPPRESSIONS: [IndexModel([("account_id", ASCENDING), ("address", ASCENDING)], unique=True)],
}

RECORD_WRITE_SECONDS = Histogram(
    "mailstream_sender_record_write_seconds",
    "Time of one delivery write: begin (sending), mail (the signed bytes, once per mail) or finish (the outcome)",
    ["step"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)

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
    raw: bytes | None = None  # only in records written before the bytes moved to `sender_mails`
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
            raw=doc.get("raw"),
            raw_kept=doc.get("raw_kept", False),
        )


@dataclass(frozen=True)
class StoredMail:
    raw: bytes
    signing_note: str


class Mails:
    """The exact bytes of each outgoing mail (and how they were signed), by message id: inserted once, before the
    mail's first SMTP transaction, and never updated, so every attempt (a retry, a redelivery after a crash, a
    competing worker) sends the same bytes, and a re-report carries them. Kept apart from `sender_deliveries`
    because FerretDB v1 reads and rewrites a whole document (and scans the table's bytes) on each update by `_id`:
    the ~5 KB mail made each state update ~3x slower. Pruned with the final record (`Deliveries`)."""

    def __init__(self, db: AsyncDatabase) -> None:
        self.collection = db[MAILS]

    async def get(self, message_id: str) -> StoredMail | None:
        doc = await self.collection.find_one({"_id": message_id})
        return None if doc is None else StoredMail(bytes(doc["raw"]), doc.get("signing_note", ""))

    async def keep(self, message_id: str, account_id: str, raw: bytes, signing_note: str) -> StoredMail:
        """Store the mail unless it is stored already; the stored one (another worker's, if it was first)."""
        document = {
            "_id": message_id,
            "account_id": account_id,
            "raw": raw,
            "signing_note": signing_note,
            "created_at": utcnow(),
        }
        with RECORD_WRITE_SECONDS.labels("mail").time():
            try:
                await with_retries(lambda: self.collection.insert_one(document))
                return StoredMail(raw, signing_note)
            except DuplicateKeyError:
                pass
        return await self.get(message_id) or StoredMail(raw, signing_note)  # pruned meanwhile: only if very old


class Deliveries:
    """One document per outbound message id: `sending` around the SMTP transaction, then `sent`/`failed`
    (final) or `deferred` (a temporary failure; the command is on a retry queue)."""

    def __init__(self, db: AsyncDatabase) -> None:
        self.collection = db[DELIVERIES]
        self.mails = db[MAILS]

    async def get(self, message_id: str) -> DeliveryRecord | None:
        doc = await self.collection.find_one({"_id": message_id})
        return None if doc is None else DeliveryRecord.from_document(doc)

    async def begin_attempt(
        self, message_id: str, account_id: str, recipients: list[str]
    ) -> tuple[DeliveryRecord, bool]:
        """Mark the send in progress (counting the attempt) unless it is already final; return the record, and
        whether this was the command's first attempt (the record was inserted: no mail can be stored for it yet).

        A command's first attempt is one insert: the unique `_id` makes it atomic, and FerretDB v1 pushes an `_id`
        down to SQLite only when it is the whole filter (an `_id` plus a `state` condition scans every record,
        ~0.5 s at a thousand records). Only when the record exists (a retry or a redelivery) does the conditional
        update run: `sending` again unless it is final."""
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
            # Pruned between the insert and the update (it was final and old): insert again.
        raise RuntimeError(f"delivery record {message_id} kept vanishing")

    async def delete_finished_before(self, cutoff: datetime, *, batch: int = 1000) -> int:
        """Delete final (sent/failed) records last written before `cutoff`, and their stored mails; how many
        records went.

        In batches by `_id`: on FerretDB each delete holds SQLite's single writer lock, and one delete of a whole
        backlog would stall every mail's writes meanwhile. The mails go first: a crash in between then leaves a
        final record without its bytes (a late re-report of it would lack the raw copy, but no copy of its command
        comes that late), never a mail that nothing would prune."""
        finished_before = {"state": {"$in": list(FINAL_STATES)}, "updated_at": {"$lt": cutoff}}
        deleted = 0
        while True:
            ids = [doc["_id"] async for doc in self.collection.find(finished_before, {"_id": 1}).limit(batch)]
            if not ids:
                return deleted
            await with_retries(lambda ids=ids: self.mails.delete_many({"_id": {"$in": ids}}))
            result = await with_retries(
                lambda ids=ids: self.collection.delete_many({"_id": {"$in": ids}, **finished_before})
            )
            deleted += result.deleted_count
            if len(ids) < batch or result.deleted_count == 0:  # the rest is another replica's (or next time's)
                return deleted

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
    ) -> None:
        """Record an outcome (sent/failed are final; deferred is not) on the record `begin_attempt` made.
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
        with RECORD_WRITE_SECONDS.labels("finish").time():
            await self._finish(message_id, fields)

    async def _finish(self, message_id: str, fields: dict[str, Any]) -> None:
        # Not an upsert: on FerretDB that costs a second scan, and the record exists (non-final ones are never
        # pruned). Only a record deleted by hand gets the fallback.
        updated = await with_retries(lambda: self.collection.update_one({"_id": message_id}, {"$set": fields}))
        if updated.matched_count == 0:
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
    whether the address is suppressed. One document per pair, unique index on both.

    `on_change` callbacks get the account id after every write (the guard's cache drops that account)."""

    def __init__(self, db: AsyncDatabase) -> None:
        self.collection = db[SUPPRESSIONS]
        self.on_change: list[Callable[[str], None]] = []

    def _changed(self, account_id: str) -> None:
        for callback in self.on_change:
            callback(account_id)

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
        self._changed(account_id)
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
