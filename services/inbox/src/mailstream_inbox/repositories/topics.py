"""Topics: an account's grouping of streams (a brand, a department).

A topic document: _id, account_id, name, created_at, updated_at, deleted (soft: the deletion must reach
automation's projection through `topic.changed`, and a resync republishes it), deleted_at, revision (+1 per write)
and publish_pending (the change not yet confirmed by the broker; see `mailstream_inbox.catalogue`).
"""

import uuid
from typing import Any

from pymongo import ASCENDING, IndexModel, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from mailstream_common.contracts import utcnow

from .pages import keyset_page

TOPICS = "topics"
LIVE = {"deleted": {"$ne": True}}

INDEXES = {
    TOPICS: [
        IndexModel([("account_id", ASCENDING), ("created_at", ASCENDING), ("_id", ASCENDING)], name="topics_list"),
        IndexModel(
            [("publish_pending", ASCENDING)],
            name="topics_publish_pending",
            partialFilterExpression={"publish_pending": {"$exists": True}},
        ),
    ]
}


async def create_topic(db: AsyncDatabase, account_id: str, name: str) -> dict[str, Any]:
    now = utcnow()
    doc = {
        "_id": uuid.uuid4().hex,
        "account_id": account_id,
        "name": name,
        "created_at": now,
        "updated_at": now,
        "deleted": False,
        "revision": 1,
        "publish_pending": "created",
    }
    await db[TOPICS].insert_one(doc)
    return doc


async def get_topic(db: AsyncDatabase, account_id: str, topic_id: str) -> dict[str, Any] | None:
    return await db[TOPICS].find_one({"_id": topic_id, "account_id": account_id, **LIVE})


async def list_topics(
    db: AsyncDatabase, account_id: str, *, limit: int, after: dict[str, Any] | None = None
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    return await keyset_page(db[TOPICS], {"account_id": account_id, **LIVE}, limit=limit, after=after)


async def rename_topic(db: AsyncDatabase, account_id: str, topic_id: str, name: str) -> dict[str, Any] | None:
    return await db[TOPICS].find_one_and_update(
        {"_id": topic_id, "account_id": account_id, **LIVE},
        {"$set": {"name": name, "updated_at": utcnow(), "publish_pending": "updated"}, "$inc": {"revision": 1}},
        return_document=ReturnDocument.AFTER,
    )


async def delete_topic(db: AsyncDatabase, account_id: str, topic_id: str) -> dict[str, Any] | None:
    """Soft-delete; the deleted topic (for its `topic.changed`), or None if there was no live one."""
    now = utcnow()
    return await db[TOPICS].find_one_and_update(
        {"_id": topic_id, "account_id": account_id, **LIVE},
        {
            "$set": {"deleted": True, "deleted_at": now, "updated_at": now, "publish_pending": "deleted"},
            "$inc": {"revision": 1},
        },
        return_document=ReturnDocument.AFTER,
    )
