"""Canned responses: prepared answers with placeholders, per account (optionally per topic).

A document: _id, account_id, title, text, html (or None), topic_id (or None), created_at, updated_at, deleted
(soft, so that the deletion reaches automation's projection through `canned_response.changed` and a resync
republishes it; the text and html of a deleted one are removed), deleted_at, revision (+1 per write) and
publish_pending (the change not yet confirmed by the broker; see `mailstream_inbox.catalogue`).
"""

import uuid
from typing import Any

from pymongo import ASCENDING, IndexModel, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from mailstream_common.contracts import utcnow

from .pages import keyset_page

COLLECTION = "canned_responses"
LIVE = {"deleted": {"$ne": True}}

INDEXES = {
    COLLECTION: [
        IndexModel([("account_id", ASCENDING), ("created_at", ASCENDING), ("_id", ASCENDING)], name="canned_list"),
        IndexModel(
            [("account_id", ASCENDING), ("topic_id", ASCENDING), ("created_at", ASCENDING), ("_id", ASCENDING)],
            name="canned_by_topic",
        ),
        IndexModel(
            [("publish_pending", ASCENDING)],
            name="canned_publish_pending",
            partialFilterExpression={"publish_pending": {"$exists": True}},
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
        "deleted": False,
        "revision": 1,
        "publish_pending": "created",
    }
    await db[COLLECTION].insert_one(doc)
    return doc


async def get(db: AsyncDatabase, account_id: str, canned_id: str) -> dict[str, Any] | None:
    doc = await db[COLLECTION].find_one({"_id": canned_id, "account_id": account_id})
    return None if doc is None or doc.get("deleted") else doc


async def list_page(
    db: AsyncDatabase, account_id: str, *, topic_id: str | None, limit: int, after: dict[str, Any] | None
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    query: dict[str, Any] = {"account_id": account_id, **LIVE}
    if topic_id is not None:
        query["topic_id"] = topic_id
    return await keyset_page(db[COLLECTION], query, limit=limit, after=after)


async def update(db: AsyncDatabase, account_id: str, canned_id: str, changes: dict[str, Any]) -> dict[str, Any] | None:
    return await db[COLLECTION].find_one_and_update(
        {"_id": canned_id, "account_id": account_id, **LIVE},
        {"$set": {**changes, "updated_at": utcnow(), "publish_pending": "updated"}, "$inc": {"revision": 1}},
        return_document=ReturnDocument.AFTER,
    )


async def delete(db: AsyncDatabase, account_id: str, canned_id: str) -> dict[str, Any] | None:
    """Soft-delete (the text goes); the deleted document (for its `canned_response.changed`) or None."""
    now = utcnow()
    return await db[COLLECTION].find_one_and_update(
        {"_id": canned_id, "account_id": account_id, **LIVE},
        {
            "$set": {"deleted": True, "deleted_at": now, "updated_at": now, "publish_pending": "deleted"},
            "$unset": {"text": "", "html": ""},
            "$inc": {"revision": 1},
        },
        return_document=ReturnDocument.AFTER,
    )


async def set_attachments(
    db: AsyncDatabase, account_id: str, canned_id: str, attachments: list[dict[str, Any]]
) -> dict[str, Any] | None:
    """The files sent with it (records whose bytes are in `blobs`), replacing the earlier list."""
    return await db[COLLECTION].find_one_and_update(
        {"_id": canned_id, "account_id": account_id, **LIVE},
        {"$set": {"attachments": attachments}},
        return_document=ReturnDocument.AFTER,
    )
