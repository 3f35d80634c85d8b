"""Inbox's catalogue events: `stream.changed`, `topic.changed` and `canned_response.changed`, published reliably.

Other services keep projections of inbox's streams, topics and canned responses (they never read inbox's
collections). What keeps those projections right:

- **Versions.** Every write that changes what an event carries increments the document's `revision` in the same
  atomic update; the event carries it as `version`, and projections apply only newer versions.
- **An outbox in the document.** The same update sets `publish_pending` (the change). The route publishes the
  event right after the write and then unsets `publish_pending`, guarded on the revision it published (a newer
  write keeps its own flag). If the process dies between the write and the confirm, or the broker does not confirm,
  the flag stays, and `relay_pending` (every `INBOX_CATALOGUE_RELAY_SECONDS`, on every worker replica) publishes
  the document's current state. Nothing is lost between the database write and the publish; duplicates are
  harmless.
- **Resync.** `projection.resync_requested` (from a service whose projection is empty, or an operator) makes
  inbox republish every document of the asked kinds, deleted ones included, as change "snapshot".
"""

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from pymongo.asynchronous.database import AsyncDatabase

from mailstream_common.broker import Broker, Delivery, PublishError
from mailstream_common.contracts import (
    CannedResponseChanged,
    Event,
    ProjectionResyncRequested,
    StreamChanged,
    TopicChanged,
    utcnow,
)

from .repositories.canned_responses import COLLECTION as CANNED_RESPONSES
from .repositories.streams import STREAMS
from .repositories.topics import TOPICS

log = logging.getLogger(__name__)

Entity = Literal["stream", "topic", "canned_response"]
Change = Literal["created", "updated", "deleted", "snapshot"]
PENDING = "publish_pending"
RESYNC_CONCURRENCY = 32  # publications in flight at once while answering a resync


def _version(doc: dict[str, Any]) -> int:
    return max(1, int(doc.get("revision") or 1))


def stream_event(doc: dict[str, Any], change: Change) -> StreamChanged:
    return StreamChanged(
        change=change,
        version=_version(doc),
        account_id=doc["account_id"],
        topic_id=doc["topic_id"],
        stream_id=doc["_id"],
        address=doc["address"],
        display_name=doc.get("display_name", ""),
        forwarding_address=doc["forwarding_address"],
        allow_agent_send=doc["allow_agent_send"],
        status=doc.get("status", "awaiting_mail"),
        deleted=bool(doc.get("deleted")),
    )


def topic_event(doc: dict[str, Any], change: Change) -> TopicChanged:
    return TopicChanged(
        change=change,
        version=_version(doc),
        account_id=doc["account_id"],
        topic_id=doc["_id"],
        name=doc.get("name", ""),
        deleted=bool(doc.get("deleted")),
    )


def canned_response_event(doc: dict[str, Any], change: Change) -> CannedResponseChanged:
    return CannedResponseChanged(
        change=change,
        version=_version(doc),
        account_id=doc["account_id"],
        canned_response_id=doc["_id"],
        topic_id=doc.get("topic_id"),
        title=doc.get("title", ""),
        deleted=bool(doc.get("deleted")),
    )


@dataclass(frozen=True)
class Kind:
    collection: str
    event: Callable[[dict[str, Any], Change], Event]


KINDS: dict[Entity, Kind] = {
    "stream": Kind(STREAMS, stream_event),
    "topic": Kind(TOPICS, topic_event),
    "canned_response": Kind(CANNED_RESPONSES, canned_response_event),
}


async def _publish_and_clear(db: AsyncDatabase, broker: Broker, entity: Entity, doc: dict[str, Any], change: Change):
    kind = KINDS[entity]
    await broker.publish(kind.event(doc, change))
    await db[kind.collection].update_one(
        {"_id": doc["_id"], "revision": doc.get("revision"), PENDING: {"$exists": True}}, {"$unset": {PENDING: ""}}
    )


async def publish_change(
    db: AsyncDatabase, broker: Broker, entity: Entity, doc: dict[str, Any], change: Change
) -> bool:
    """Publish the change a route just wrote (`doc` as returned by that write); True if the broker confirmed it.

    An unconfirmed publish is not an error for the caller: the write is saved with `publish_pending`, and the relay
    publishes it."""
    try:
        await _publish_and_clear(db, broker, entity, doc, change)
    except PublishError:
        log.warning("change event not confirmed; the relay will publish it", extra={"entity": entity, "id": doc["_id"]})
        return False
    return True


async def relay_pending(db: AsyncDatabase, broker: Broker, *, older_than_seconds: float, limit: int = 500) -> int:
    """Publish the current state of every document whose change is still unpublished after `older_than_seconds`
    (the route had its chance); returns how many were published."""
    published = 0
    cutoff = utcnow() - timedelta(seconds=older_than_seconds)
    for entity, kind in KINDS.items():
        cursor = db[kind.collection].find({PENDING: {"$exists": True}, "updated_at": {"$lt": cutoff}}).limit(limit)
        async for doc in cursor:
            change: Change = "deleted" if doc.get("deleted") else doc.get(PENDING, "updated")
            await _publish_and_clear(db, broker, entity, doc, change)
            published += 1
    if published:
        log.info("catalogue relay published pending changes", extra={"count": published})
    return published


async def republish_all(db: AsyncDatabase, broker: Broker, entities: list[Entity]) -> int:
    """Publish every document of these kinds (all accounts, deleted included) as a "snapshot"; returns the count."""
    published = 0
    for entity in dict.fromkeys(entities):
        kind = KINDS[entity]
        batch: list[Event] = []
        async for doc in db[kind.collection].find({}).sort("_id", 1):
            batch.append(kind.event(doc, "snapshot"))
            if len(batch) >= RESYNC_CONCURRENCY:
                await asyncio.gather(*(broker.publish(e) for e in batch))
                published += len(batch)
                batch = []
        if batch:
            await asyncio.gather(*(broker.publish(e) for e in batch))
            published += len(batch)
    return published


def make_resync_handler(db: AsyncDatabase, broker: Broker):
    """`inbox.resync`: answer a `projection.resync_requested`. A failure part-way retries the whole answer (the
    events already sent are duplicates, which the projections ignore)."""

    async def handle(request: ProjectionResyncRequested, _: Delivery) -> None:
        count = await republish_all(db, broker, list(request.entities))
        log.info(
            "catalogue republished for a resync",
            extra={"entities": request.entities, "requested_by": request.requested_by, "count": count},
        )

    return handle
