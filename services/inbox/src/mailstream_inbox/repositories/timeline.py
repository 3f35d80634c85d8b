"""A conversation's timeline: what was done to it besides messages (merges, splits, moves, snoozes, scheduled
replies), oldest first. Inbox is the only writer; entries are never changed.

An entry: _id, account_id, conversation_id, kind (`contracts.timers.TimelineKind`), at, actor, details {..}.
`_id` is derived from (conversation, kind, an operation key), so an operation repeated after a crash records its
entry once.
"""

from datetime import datetime
from typing import Any

from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase

from mailstream_common.mongo import insert_once

from .messages import keyed_id
from .pages import keyset_page

COLLECTION = "conversation_timeline"

INDEXES = {
    COLLECTION: [
        IndexModel(
            [("conversation_id", ASCENDING), ("at", ASCENDING), ("_id", ASCENDING)], name="timeline_by_conversation"
        )
    ]
}


def entry_id(conversation_id: str, kind: str, operation_key: str) -> str:
    return keyed_id("timeline", conversation_id, kind, operation_key)


async def record(
    db: AsyncDatabase,
    *,
    account_id: str,
    conversation_id: str,
    kind: str,
    operation_key: str,
    at: datetime,
    actor: str,
    details: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], bool]:
    """Record the entry once per (conversation, kind, operation key): (entry, created)."""
    doc = {
        "_id": entry_id(conversation_id, kind, operation_key),
        "account_id": account_id,
        "conversation_id": conversation_id,
        "kind": kind,
        "at": at,
        "actor": actor,
        "details": details or {},
    }
    return await insert_once(db[COLLECTION], doc, {"_id": doc["_id"]})


async def list_page(
    db: AsyncDatabase, account_id: str, conversation_id: str, *, limit: int, after: dict[str, Any] | None
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    return await keyset_page(
        db[COLLECTION],
        {"conversation_id": conversation_id, "account_id": account_id},
        limit=limit,
        after=after,
        sort_field="at",
    )
