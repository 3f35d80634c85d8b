"""Projections: a service's own copy of what it needs from another service's data, fed by versioned events.

A projection document is `{_id, version, ...fields}`. An event is applied only if its `version` is newer than the
document's, with one conditional upsert:

    update_one({_id, version: {$lt: v}}, {$set: {...fields, version: v}}, upsert=True)

- no document yet: the filter matches nothing, the upsert inserts it;
- an older document: matched and replaced field by field;
- the same or a newer version: not matched, so the upsert tries to insert a second document with the same `_id`
  and fails with a duplicate key (11000): the event is stale and is ignored.
- two writers inserting the first version at once: one wins, the other gets the duplicate key, and re-running the
  guarded update once settles it (it applies if its version is still the newer one, else it was stale).

So applying the same event twice, or an older one after a newer one, changes nothing: redelivery, duplicates from a
resync and reordering between queues are all harmless. `is_newer` is the same rule as a pure function.

A projection is rebuilt by replay: a service whose projection is empty at start asks inbox to republish everything
(`is_empty` before consuming, then `request_resync`); an operator can ask for the same at any time
(`mailstream projections resync`).
"""

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from . import topology
from .contracts import ProjectionResyncRequested
from .contracts.streams import CatalogueEntity

if TYPE_CHECKING:
    from .broker import Broker

log = logging.getLogger(__name__)


def is_newer(current_version: int | None, event_version: int) -> bool:
    """The rule every projection applies: an event wins only over an older (or absent) state."""
    return current_version is None or event_version > current_version


async def apply_versioned(
    collection: AsyncCollection, document_id: str, version: int, fields: Mapping[str, Any]
) -> bool:
    """Make the document `document_id` hold `fields` at `version` unless it already holds that version or a newer
    one; True if this call changed it."""
    guard = {"_id": document_id, "version": {"$lt": version}}
    update = {"$set": {**fields, "version": version}}
    try:
        result = await collection.update_one(guard, update, upsert=True)
    except DuplicateKeyError:
        # Either the stored version is not older (a stale event) or a concurrent first insert won the race: the
        # same guarded update without upsert tells them apart.
        result = await collection.update_one(guard, update)
        return result.modified_count == 1
    return result.upserted_id is not None or result.modified_count == 1


async def is_empty(collection: AsyncCollection) -> bool:
    return await collection.find_one({}, {"_id": 1}) is None


async def request_resync(broker: "Broker", entities: list[CatalogueEntity], *, service: str) -> None:
    """Ask inbox to republish the entities a projection needs (`projection.resync_requested`).

    A service calls it at start, after `broker.start()` (its projection queue is then bound, so no snapshot is
    lost), when its projection was empty *before* it started consuming (`is_empty`; checked before, because an
    event already queued would otherwise make a projection that missed everything else look filled). The request
    waits in `inbox.resync` if inbox is not running yet."""
    await broker.declare(topology.INBOX_RESYNC)
    await broker.publish(ProjectionResyncRequested(entities=entities, requested_by=service))
    log.info("projection empty at start: resync requested", extra={"entities": entities})
