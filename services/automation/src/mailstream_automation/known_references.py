"""`known_references`: automation's own projection of the inbox catalogue a rule may name (topics, streams, canned
responses), with only what the save-time checks need: ids, the account, a stream's topic, and whether it is deleted.

A document: `_id` ("<kind>:<id>"), `kind` ("topic" | "stream" | "canned_response"), `account_id`, `topic_id` (a
stream's topic, a canned response's optional topic), `deleted`, `version` (the entity's revision in inbox). Fed by
`topic.changed`, `stream.changed` and `canned_response.changed` on the durable queue `automation.references` (shared
by the replicas), applied only when newer (`mailstream_common.projection`), and rebuilt by a resync when empty at
start. Inbox's collections are never read.
"""

from typing import Any, Literal

from pymongo.asynchronous.database import AsyncDatabase

from mailstream_common.broker import Delivery
from mailstream_common.contracts import CannedResponseChanged, StreamChanged, TopicChanged
from mailstream_common.projection import apply_versioned

COLLECTION = "known_references"
ENTITIES: list[Literal["stream", "topic", "canned_response"]] = ["topic", "stream", "canned_response"]

Kind = Literal["topic", "stream", "canned_response"]
CatalogueEvent = TopicChanged | StreamChanged | CannedResponseChanged


def reference_id(kind: Kind, entity_id: str) -> str:
    return f"{kind}:{entity_id}"


def reference_of(event: CatalogueEvent) -> tuple[str, dict[str, Any]]:
    """The projection document's id and fields for one event."""
    if isinstance(event, TopicChanged):
        kind, entity_id, topic_id = "topic", event.topic_id, None
    elif isinstance(event, StreamChanged):
        kind, entity_id, topic_id = "stream", event.stream_id, event.topic_id
    else:
        kind, entity_id, topic_id = "canned_response", event.canned_response_id, event.topic_id
    fields = {"kind": kind, "account_id": event.account_id, "topic_id": topic_id, "deleted": event.deleted}
    return reference_id(kind, entity_id), fields


class KnownReferences:
    def __init__(self, db: AsyncDatabase) -> None:
        self.collection = db[COLLECTION]

    async def apply(self, event: CatalogueEvent) -> bool:
        document_id, fields = reference_of(event)
        return await apply_versioned(self.collection, document_id, event.version, fields)

    async def on_change(self, event: CatalogueEvent, _: Delivery) -> None:
        """Consumer of `automation.references`: idempotent, and an older event never overwrites a newer one."""
        await self.apply(event)

    async def find_live(self, kind: Kind, entity_id: str, account_id: str) -> dict[str, Any] | None:
        """The live entity of this account, or None (unknown, deleted or another account's: all the same)."""
        doc = await self.collection.find_one({"_id": reference_id(kind, entity_id)})
        if doc is None or doc.get("deleted") or doc.get("account_id") != account_id:
            return None
        return doc
