"""`known_references`: automation's own projection of the inbox catalogue a rule may name (topics, streams, canned
responses), with only what the save-time checks need (`references.py`).

A document: `_id` ("<kind>:<id>"), `kind` ("topic" | "stream" | "canned_response"), `account_id`, `topic_id` (a
stream's topic, a canned response's optional topic), `deleted`, `version` (the entity's revision in inbox). Fed by
`topic.changed`, `stream.changed` and `canned_response.changed` on the durable queue `automation.references` (shared
by the replicas), applied only when newer (`mailstream_common.projection`), and rebuilt by a resync when empty at
start.
"""

import asyncio
import time
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from mailstream_common.projection import apply_versioned

from ..references import CatalogueEvent, is_live, reference_errors, reference_of, referenced_ids
from ..rules import RuleDefinition

KNOWN_REFERENCES = "known_references"

# An entity created a moment ago is known once its `*.changed` event has been applied (normally within milliseconds):
# an id not known yet is looked up again at this interval until the caller's settle time is up.
SETTLE_POLL_SECONDS = 0.05


class KnownReferencesRepository:
    def __init__(self, db: AsyncDatabase) -> None:
        self.collection = db[KNOWN_REFERENCES]

    async def apply(self, event: CatalogueEvent) -> bool:
        """Idempotent, and an older event never overwrites a newer one."""
        document_id, fields = reference_of(event)
        return await apply_versioned(self.collection, document_id, event.version, fields)

    async def live(self, account_id: str, ids: list[str]) -> dict[str, dict[str, Any]]:
        """The account's live entities among these projection ids, by id."""
        if not ids:
            return {}
        cursor = self.collection.find({"_id": {"$in": ids}})
        return {doc["_id"]: doc async for doc in cursor if is_live(doc, account_id)}

    async def errors_for(
        self, account_id: str, rule: RuleDefinition, *, settle_seconds: float = 0.0
    ) -> list[tuple[list[Any], str]]:
        """(location, message) of every id in the rule that is not the account's own. An id not known yet is looked
        up again for up to `settle_seconds`, so a client that creates a topic and then a rule for it does not see a
        spurious 422."""
        deadline = time.monotonic() + settle_seconds
        ids = referenced_ids(rule)
        while True:
            errors = reference_errors(rule, await self.live(account_id, ids))
            if not errors or time.monotonic() >= deadline:
                return errors
            await asyncio.sleep(SETTLE_POLL_SECONDS)
