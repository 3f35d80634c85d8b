"""Topics: an account's grouping of streams (a brand, a department)."""

import uuid
from typing import Any

from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase

from mailstream_common.contracts import utcnow

from . import keyset_page

TOPICS = "topics"

INDEXES = {
    TOPICS: [IndexModel([("account_id", ASCENDING), ("created_at", ASCENDING), ("_id", ASCENDING)], name="topics_list")]
}


async def create_topic(db: AsyncDatabase, account_id: str, name: str) -> dict[str, Any]:
    now = utcnow()
    doc = {"_id": uuid.uuid4().hex, "account_id": account_id, "name": name, "created_at": now, "updated_at": now}
    await db[TOPICS].insert_one(doc)
    return doc


async def get_topic(db: AsyncDatabase, account_id: str, topic_id: str) -> dict[str, Any] | None:
    return await db[TOPICS].find_one({"_id": topic_id, "account_id": account_id})


async def list_topics(
    db: AsyncDatabase, account_id: str, *, limit: int, after: dict[str, Any] | None = None
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    return await keyset_page(db[TOPICS], {"account_id": account_id}, limit=limit, after=after)


async def rename_topic(db: AsyncDatabase, account_id: str, topic_id: str, name: str) -> dict[str, Any] | None:
    await db[TOPICS].update_one(
        {"_id": topic_id, "account_id": account_id}, {"$set": {"name": name, "updated_at": utcnow()}}
    )
    return await get_topic(db, account_id, topic_id)


async def delete_topic(db: AsyncDatabase, account_id: str, topic_id: str) -> bool:
    result = await db[TOPICS].delete_one({"_id": topic_id, "account_id": account_id})
    return result.deleted_count == 1
