"""`sender_deliveries`: the state of each send, by message id.

A record is created by an insert on its unique `_id` (the message id), and every later state change is a conditional
update that never moves a final record (`sent`, `failed`) again. A record gets `expires_at` (TTL index) when it
becomes final.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from mailstream_common.contracts import utcnow

from ..metrics import RECORD_WRITE_SECONDS
from .retries import with_retries

DELIVERIES = "sender_deliveries"

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
    failure_reason: str | None = None  # failed: suppressed, rejected, expired, invalid
    relay_reply: str | None = None  # the relay's reply to the last attempt
    retry_round: int = 0  # which retry through the API this record's state belongs to

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
            failure_reason=doc.get("failure_reason"),
            relay_reply=doc.get("relay_reply"),
            retry_round=doc.get("retry_round", 0),
        )


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
        self, message_id: str, account_id: str, recipients: list[str], retry_round: int = 0
    ) -> tuple[DeliveryRecord, bool]:
        """Mark the send in progress (counting the attempt) unless it is already final; return the record, and
        whether this was the command's first attempt (the record was inserted: no mail can be stored for it yet).

        A command's first attempt is one insert (the unique `_id` makes it atomic: of concurrent first attempts
        exactly one inserts). Only when the record exists (a retry, a redelivery, the losers of that race) does the
        conditional update run: `sending` again, attempts + 1, unless it is final."""
        with RECORD_WRITE_SECONDS.labels("begin").time():
            record, first = await self._begin_attempt(message_id, account_id, recipients)
            if record.state == "failed" and record.retry_round < retry_round:
                record = await self._begin_retry(record, retry_round)
            return record, first

    async def _begin_retry(self, record: DeliveryRecord, retry_round: int) -> DeliveryRecord:
        """A failed record starts the retry round `retry_round` (inbox's retry through the API): `sending` again.
        One conditional update, so of two commands of the same round exactly one moves it; the other finds it in
        work (or final again) like any redelivery. The record no longer expires while it is in work."""
        doc = await with_retries(
            lambda: self.collection.find_one_and_update(
                {"_id": record.message_id, "state": "failed", "retry_round": {"$not": {"$gte": retry_round}}},
                {
                    "$set": {"state": "sending", "updated_at": utcnow(), "retry_round": retry_round},
                    "$unset": {"expires_at": ""},
                    "$inc": {"attempts": 1},
                },
                return_document=ReturnDocument.AFTER,
            )
        ) or await self.collection.find_one({"_id": record.message_id})
        return record if doc is None else DeliveryRecord.from_document(doc)

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
        failure_reason: str | None = None,
        relay_reply: str | None = None,
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
            "failure_reason": failure_reason,
            "relay_reply": relay_reply,
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
