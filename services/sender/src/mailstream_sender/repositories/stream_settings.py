"""`stream_settings`: sender's own projection of inbox's streams, what the guard steps need from them.

A document per stream: `_id` (stream id), `account_id`, `topic_id`, `address` (the customer-facing address replies
come from), `display_name`, `allow_agent_send`, `deleted`, `version` (the stream's revision in inbox). Fed by
`stream.changed` on the durable queue `sender.stream_settings` (shared by the replicas) and, so that a replica's
cache never re-reads a projection older than the event that invalidated it, by each replica's own queue before it
invalidates (both writes are the same guarded upsert: `mailstream_common.projection`). Rebuilt by a resync when
empty at start. Inbox's `streams` collection is never read.
"""

from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from mailstream_common.contracts import Contract, StreamChanged
from mailstream_common.projection import apply_versioned

COLLECTION = "stream_settings"


class StreamRecord(Contract):
    """A stream as the sender knows it (deleted ones included, so the guard can say why)."""

    id: str
    account_id: str
    topic_id: str = ""
    address: str
    display_name: str = ""
    allow_agent_send: bool
    deleted: bool = False
    version: int = 0


def settings_fields(event: StreamChanged) -> dict[str, Any]:
    return {
        "account_id": event.account_id,
        "topic_id": event.topic_id,
        "address": event.address.lower(),
        "display_name": event.display_name,
        "allow_agent_send": event.allow_agent_send,
        "deleted": event.deleted,
    }


class StreamSettings:
    def __init__(self, db: AsyncDatabase) -> None:
        self.collection = db[COLLECTION]

    async def apply(self, event: StreamChanged) -> bool:
        """Idempotent, and an older event never overwrites a newer one."""
        return await apply_versioned(self.collection, event.stream_id, event.version, settings_fields(event))

    async def get(self, stream_id: str) -> StreamRecord | None:
        doc = await self.collection.find_one({"_id": stream_id})
        return None if doc is None else StreamRecord.model_validate({**doc, "id": doc["_id"]})
