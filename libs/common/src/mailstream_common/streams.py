"""The stream record as stored by inbox, read (never written) by ingest and sender.

Inbox owns the `streams` collection; ingest resolves RCPT TO through it when its event-fed cache misses, and sender
checks `allow_agent_send` and the customer-facing address before sending.
"""

from datetime import datetime

from pymongo.asynchronous.database import AsyncDatabase

from .contracts.base import Contract

STREAMS = "streams"


class StreamRecord(Contract):
    id: str
    account_id: str
    topic_id: str
    address: str
    display_name: str = ""
    allow_agent_send: bool
    forwarding_address: str
    status: str = "awaiting_mail"
    deleted: bool = False
    created_at: datetime | None = None


def _record(doc: dict | None) -> StreamRecord | None:
    return None if doc is None else StreamRecord.model_validate({**doc, "id": doc["_id"]})


async def find_live_stream_by_forwarding_address(db: AsyncDatabase, address: str) -> StreamRecord | None:
    return _record(await db[STREAMS].find_one({"forwarding_address": address.lower(), "deleted": False}))


async def get_stream(db: AsyncDatabase, stream_id: str) -> StreamRecord | None:
    return _record(await db[STREAMS].find_one({"_id": stream_id}))
