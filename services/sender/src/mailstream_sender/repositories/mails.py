"""`sender_mails`: the exact bytes of each outgoing mail, insert-only, so that the delivery records updated twice
per mail stay small."""

from dataclasses import dataclass
from datetime import datetime

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from mailstream_common.contracts import utcnow

from ..metrics import RECORD_WRITE_SECONDS
from .retries import with_retries

MAILS = "sender_mails"


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
