"""Accounts: the tenant every other record belongs to."""

import uuid
from typing import Any

from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase

from mailstream_common.contracts import utcnow

from .pages import keyset_page

ACCOUNTS = "accounts"

INDEXES = {ACCOUNTS: [IndexModel([("created_at", ASCENDING), ("_id", ASCENDING)], name="accounts_created")]}


async def create_account(db: AsyncDatabase, name: str) -> dict[str, Any]:
    doc = {"_id": uuid.uuid4().hex, "name": name, "created_at": utcnow()}
    await db[ACCOUNTS].insert_one(doc)
    return doc


async def get_account(db: AsyncDatabase, account_id: str) -> dict[str, Any] | None:
    return await db[ACCOUNTS].find_one({"_id": account_id})


async def list_accounts(
    db: AsyncDatabase, *, limit: int = 200, after: dict[str, Any] | None = None
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    return await keyset_page(db[ACCOUNTS], {}, limit=limit, after=after)


async def set_attachment_max_bytes(db: AsyncDatabase, account_id: str, max_bytes: int | None) -> dict[str, Any] | None:
    """The account's own attachment size limit (None: the service default, INBOX_ATTACHMENT_MAX_BYTES)."""
    return await db[ACCOUNTS].find_one_and_update(
        {"_id": account_id}, {"$set": {"attachment_max_bytes": max_bytes}}, return_document=True
    )
