"""Canned responses: prepared answers with placeholders, per account (optionally per topic).

A document: _id, account_id, title, text, html (or None), topic_id (or None), created_at, updated_at.
"""

import uuid
from typing import Any

from pymongo import ASCENDING, IndexModel, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from mailstream_common.contracts import utcnow

from . import keyset_page

COLLECTION = "canned_responses"

INDEXES = {
    COLLECTION: [
        IndexModel([("account_id", ASCENDING), ("created_at", ASCENDING), ("_id", ASCENDING)], name="canned_list"),
        IndexModel(
            [("account_id", ASCENDING), ("topic_id", ASCENDING), ("created_at", ASCENDING), ("_id", ASCENDING)],
            name="canned_by_topic",
        ),
    ]
}


async def create(
    db: AsyncDatabase, account_id: str, *, title: str, text: str, html: str | None, topic_id: str | None
) -> dict[str, Any]:
    now = utcnow()
    doc = {
        "_id": uuid.uuid4().hex,
        "account_id": account_id,
        "title": title,
        "text": text,
        "html": html,
        "topic_id": topic_id,
        "created_at": now,
        "updated_at": now,
    }
    await db[COLLECTION].insert_one(doc)
    return doc


async def get(db: AsyncDatabase, account_id: str, canned_id: str) -> dict[str, Any] | None:
    return await db[COLLECTION].find_one({"_id": canned_id, "account_id": account_id})


async def list_page(
    db: AsyncDatabase, account_id: str, *, topic_id: str | None, limit: int, after: dict[str, Any] | None
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    query: dict[str, Any] = {"account_id": account_id}
    if topic_id is not None:
        query["topic_id"] = topic_id
    return await keyset_page(db[COLLECTION], query, limit=limit, after=after)


async def update(db: AsyncDatabase, account_id: str, canned_id: str, changes: dict[str, Any]) -> dict[str, Any] | None:
    return await db[COLLECTION].find_one_and_update(
        {"_id": canned_id, "account_id": account_id},
        {"$set": {**changes, "updated_at": utcnow()}},
        return_document=ReturnDocument.AFTER,
    )


async def delete(db: AsyncDatabase, account_id: str, canned_id: str) -> bool:
    result = await db[COLLECTION].delete_one({"_id": canned_id, "account_id": account_id})
    return result.deleted_count == 1
