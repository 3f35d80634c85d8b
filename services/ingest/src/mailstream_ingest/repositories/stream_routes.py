"""`stream_routes`: ingest's own projection of inbox's streams, the one thing RCPT TO needs from them.

A document per stream: `_id` (stream id), `forwarding_address` (lower-case), `account_id`, `stream_address`
(lower-case), `live` (false once deleted), `version` (the stream's revision in inbox). It is fed by `stream.changed`
on the durable queue `ingest.stream_routes` (`consumers/stream_routes.py`), applied only when newer
(`mailstream_common.projection`), and rebuilt by a resync when empty at start.
"""

from typing import Any

from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase

from mailstream_common.contracts import StreamChanged
from mailstream_common.contracts.mail import StreamTarget
from mailstream_common.projection import apply_versioned

from ..recipients import Route

COLLECTION = "stream_routes"

INDEXES = {COLLECTION: [IndexModel([("forwarding_address", ASCENDING)], name="stream_routes_address")]}


def route_fields(event: StreamChanged) -> dict[str, Any]:
    return {
        "forwarding_address": event.forwarding_address.lower(),
        "account_id": event.account_id,
        "stream_address": event.address.lower(),
        "live": not event.deleted,
    }


def target_of(doc: dict[str, Any]) -> StreamTarget:
    return StreamTarget(
        forwarding_address=doc["forwarding_address"],
        stream_id=doc["_id"],
        account_id=doc["account_id"],
        stream_address=doc["stream_address"],
    )


class StreamRoutes:
    def __init__(self, db: AsyncDatabase) -> None:
        self.collection = db[COLLECTION]

    async def apply(self, event: StreamChanged) -> bool:
        """Make the projection agree with the event unless it already holds that version or a newer one."""
        return await apply_versioned(self.collection, event.stream_id, event.version, route_fields(event))

    async def find(self, forwarding_address: str) -> Route | None:
        """The stream of this forwarding address, live or deleted (its version keeps the cache from going back)."""
        doc = await self.collection.find_one({"forwarding_address": forwarding_address.lower()})
        return None if doc is None else Route(target_of(doc), int(doc.get("version", 0)), bool(doc.get("live")))
