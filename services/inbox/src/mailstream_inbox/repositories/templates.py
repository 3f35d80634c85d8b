"""Email templates: the account's template, and per-stream overrides (a brand's own look and signature).

A document: _id, account_id, stream_id ("" for the account template), html, text (None in an override means
"use the account's"), signature (overrides only), updated_at. Unique per (account_id, stream_id).
"""

from typing import Any

from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from mailstream_common.contracts import utcnow

from .messages import keyed_id

COLLECTION = "templates"
ACCOUNT_SCOPE = ""

INDEXES = {
    COLLECTION: [
        IndexModel([("account_id", ASCENDING), ("stream_id", ASCENDING)], unique=True, name="templates_scope"),
    ]
}


def template_id_for(account_id: str, stream_id: str = ACCOUNT_SCOPE) -> str:
    """`_id` from the scope: every reply reads the template, so it is an `_id` lookup (see messages.keyed_id)."""
    return keyed_id("template", account_id, stream_id)


async def get(db: AsyncDatabase, account_id: str, stream_id: str = ACCOUNT_SCOPE) -> dict[str, Any] | None:
    return await db[COLLECTION].find_one({"_id": template_id_for(account_id, stream_id)})


async def put(db: AsyncDatabase, account_id: str, fields: dict[str, Any], stream_id: str = ACCOUNT_SCOPE) -> dict:
    """Create or replace the template of a scope (upsert; a concurrent first write is retried once)."""
    scope = {"_id": template_id_for(account_id, stream_id)}
    update = {
        "$set": {**fields, "updated_at": utcnow()},
        "$setOnInsert": {"account_id": account_id, "stream_id": stream_id},
    }
    try:
        await db[COLLECTION].update_one(scope, update, upsert=True)
    except DuplicateKeyError:
        await db[COLLECTION].update_one(scope, {"$set": update["$set"]})
    doc = await get(db, account_id, stream_id)
    assert doc is not None
    return doc


async def delete(db: AsyncDatabase, account_id: str, stream_id: str) -> bool:
    result = await db[COLLECTION].delete_one({"_id": template_id_for(account_id, stream_id)})
    return result.deleted_count == 1
