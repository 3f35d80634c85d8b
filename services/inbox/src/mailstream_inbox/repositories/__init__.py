"""The only code that talks to MongoDB: one module per collection (or aggregate); routes, consumers and use cases
never query inline. Each module declares `INDEXES = {collection: [IndexModel, ...]}` next to the queries they serve;
`INDEXES` here is all of them, which start-up and the CLI create.
"""

from collections.abc import Mapping, Sequence

from pymongo import IndexModel
from pymongo.asynchronous.database import AsyncDatabase

from mailstream_common import mongo

from . import (
    accounts,
    api_keys,
    blobs,
    canned_responses,
    conversation_changes,
    conversations,
    data_erasure,
    data_exports,
    data_requests,
    dead_letters,
    live_events,
    messages,
    streams,
    templates,
    timeline,
    topics,
    uploads,
)


def merge(*specs: Mapping[str, Sequence[IndexModel]]) -> dict[str, list[IndexModel]]:
    merged: dict[str, list[IndexModel]] = {}
    for spec in specs:
        for collection, models in spec.items():
            merged.setdefault(collection, []).extend(models)
    return merged


INDEXES = merge(
    *(
        module.INDEXES
        for module in (
            accounts,
            api_keys,
            topics,
            streams,
            conversations,
            messages,
            blobs,
            canned_responses,
            templates,
            live_events,
            timeline,
            conversation_changes,
            uploads,
            dead_letters,
            data_erasure,
            data_requests,
            data_exports,
        )
    )
)


async def ensure_indexes(db: AsyncDatabase, indexes: Mapping[str, Sequence[IndexModel]] | None = None) -> None:
    """Create every inbox index (idempotent: each replica and the CLI may run it)."""
    await mongo.ensure_indexes(db, INDEXES if indexes is None else indexes)
