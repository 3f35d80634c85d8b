"""Email templates: the account's template, and per-stream overrides (a brand's own look and signature).

A document: _id, account_id, stream_id ("" for the account template), html, text (None in an override means
"use the account's"), signature (overrides only), updated_at. Unique per (account_id, stream_id).
"""

import uuid
from typing import Any

from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from mailstream_common.contracts import utcnow

COLLECTION = "templates"
ACCOUNT_SCOPE = ""

INDEXES = {
    COLLECTION: [
        IndexModel([("account_id", ASCENDING), ("stream_id", ASCENDING)], unique=True, name="templates_scope"),
    ]
}


async def get(db: AsyncDatabase, account_id: str, stream_id: str = ACCOUNT_SCOPE) -> dict[str, Any] | None:
    return await db[COLLECTION].find_one({"account_id": account_id, "stream_id": stream_id})


async def put(db: AsyncDatabase, account_id: str, fields: dict[str, Any], stream_id: str = ACCOUNT_SCOPE) -> dict:
    """Create or replace the template of a scope (upsert; a concurrent first write is retried once)."""
    scope = {"account_id": account_id, "stream_id": stream_id}
    update = {"$set": {**fields, "updated_at": utcnow()}, "$setOnInsert": {"_id": uuid.uuid4().hex}}
    try:
        await db[COLLECTION].update_one(scope, update, upsert=True)
    except DuplicateKeyError:
        await db[COLLECTION].update_one(scope, {"$set": update["$set"]})
    doc = await get(db, account_id, stream_id)
    assert doc is not None
    return doc


async def delete(db: AsyncDatabase, account_id: str, stream_id: str) -> bool:
    result = await db[COLLECTION].delete_one({"account_id": account_id, "stream_id": stream_id})
    return result.deleted_count == 1
