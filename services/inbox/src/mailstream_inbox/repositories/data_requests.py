"""`data_requests`: each erasure (asked through the API, or a retention erasure of one old conversation) and the
progress of every service's part. Inbox is the only writer.

A request document:
    _id, account_id, type erase|export|retention, status running|done, created_at, finished_at,
    address (only while running: the services are told it; afterwards only) address_hash, address_domain,
    keep_suppression, conversation_ids / message_ids (what inbox found when it was made; dropped when done),
    older_than (retention), published (the broker confirmed `DataErasureRequested`),
    parts {<service>: {status done, counts {...}, at, records (an export's, until its archive is built)}},
    archive {state ready|downloaded, size, expires_at, downloaded_at} (export), active_key (while running),
    expires_at (retention only).

Idempotent: `active_key` (the type and the keyed hash of the address, or the conversation) is unique among running
requests (a partial unique index), so asking again while one runs answers the running one. A service's report is
recorded by one conditional update ("not done yet"), and the request turns done by one conditional update that
requires every part done: of concurrent last reports exactly one finishes it.
"""

import uuid
from datetime import datetime, timedelta
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from mailstream_common.contracts import ERASING_SERVICES, utcnow

from .accounts import ACCOUNTS
from .pages import keyset_page

COLLECTION = "data_requests"
RETENTION_REQUEST_KEEP = timedelta(days=30)

INDEXES = {
    COLLECTION: [
        IndexModel(
            [("account_id", ASCENDING), ("active_key", ASCENDING)],
            unique=True,
            partialFilterExpression={"active_key": {"$exists": True}},
            name="data_requests_active",
        ),
        IndexModel(
            [("account_id", ASCENDING), ("created_at", DESCENDING), ("_id", DESCENDING)], name="data_requests_list"
        ),
        IndexModel([("published", ASCENDING), ("created_at", ASCENDING)], name="data_requests_unpublished"),
        IndexModel([("expires_at", ASCENDING)], expireAfterSeconds=0, name="data_requests_expiry"),
    ]
}


async def create_once(db: AsyncDatabase, doc: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """Insert the request unless one with its `active_key` is running: (the request, whether this one is new)."""
    doc = {
        "_id": uuid.uuid4().hex,
        "status": "running",
        "created_at": utcnow(),
        "published": False,
        "parts": {},
        **doc,
    }
    for _ in range(3):
        try:
            await db[COLLECTION].insert_one(doc)
            return doc, True
        except DuplicateKeyError:
            running = await db[COLLECTION].find_one({"account_id": doc["account_id"], "active_key": doc["active_key"]})
            if running is not None:
                return running, False
            # finished between the two calls: try again
    raise RuntimeError("data request kept colliding")


async def get(db: AsyncDatabase, account_id: str, request_id: str) -> dict[str, Any] | None:
    return await db[COLLECTION].find_one({"_id": request_id, "account_id": account_id})


async def mark_published(db: AsyncDatabase, request_id: str) -> None:
    await db[COLLECTION].update_one({"_id": request_id}, {"$set": {"published": True}})


async def unpublished(db: AsyncDatabase, *, older_than: datetime, limit: int = 100) -> list[dict[str, Any]]:
    cursor = db[COLLECTION].find({"published": False, "created_at": {"$lt": older_than}}).limit(limit)
    return await cursor.to_list(limit)


async def page(
    db: AsyncDatabase, account_id: str, *, limit: int, after: dict[str, Any] | None
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    return await keyset_page(db[COLLECTION], {"account_id": account_id}, limit=limit, after=after, descending=True)


async def get_internal(db: AsyncDatabase, request_id: str) -> dict[str, Any] | None:
    return await db[COLLECTION].find_one({"_id": request_id})


async def record_part(
    db: AsyncDatabase,
    request_id: str,
    service: str,
    counts: dict[str, int],
    records: dict[str, list[dict[str, Any]]] | None = None,
) -> dict[str, Any] | None:
    """Record one service's report unless it was recorded already; the request after, or None if a duplicate.
    An export's records wait here until the archive is built."""
    part: dict[str, Any] = {"status": "done", "counts": counts, "at": utcnow()}
    if records:
        part["records"] = records
    return await db[COLLECTION].find_one_and_update(
        {"_id": request_id, "status": "running", f"parts.{service}.status": {"$ne": "done"}},
        {"$set": {f"parts.{service}": part}},
        return_document=ReturnDocument.AFTER,
    )


def every_part_done(doc: dict[str, Any]) -> bool:
    parts = doc.get("parts") or {}
    return all(parts.get(service, {}).get("status") == "done" for service in ERASING_SERVICES)


async def claim_archive(db: AsyncDatabase, account_id: str, request_id: str, *, now: datetime) -> dict[str, Any] | None:
    """Take the right to download the archive: once, and only before it expires."""
    return await db[COLLECTION].find_one_and_update(
        {"_id": request_id, "account_id": account_id, "archive.state": "ready", "archive.expires_at": {"$gt": now}},
        {"$set": {"archive.state": "downloaded", "archive.downloaded_at": now}},
        return_document=ReturnDocument.AFTER,
    )


async def finish_if_complete(
    db: AsyncDatabase, request_id: str, *, address_hash: str | None, archive: dict[str, Any] | None = None
) -> dict[str, Any] | None:
    """Mark the request done if every service reported (one winner); then it keeps no address, only its hash, and
    an export no records (they are in its archive)."""
    now = utcnow()
    every_part = {f"parts.{service}.status": "done" for service in ERASING_SERVICES}
    done: dict[str, Any] = {"status": "done", "finished_at": now}
    if address_hash is not None:
        done["address_hash"] = address_hash
    if archive is not None:
        done["archive"] = archive
    current = await db[COLLECTION].find_one({"_id": request_id}, {"type": 1})
    if current is not None and current.get("type") == "retention":
        done["expires_at"] = now + RETENTION_REQUEST_KEEP
    return await db[COLLECTION].find_one_and_update(
        {"_id": request_id, "status": "running", **every_part},
        {
            "$set": done,
            "$unset": {
                "address": "",
                "active_key": "",
                "conversation_ids": "",
                "message_ids": "",
                **{f"parts.{service}.records": "" for service in ERASING_SERVICES},
            },
        },
        return_document=ReturnDocument.AFTER,
    )


# --- retention settings (on the account document) ---


async def set_retention(db: AsyncDatabase, account_id: str, messages_days: int | None) -> dict[str, Any] | None:
    update = (
        {"$set": {"retention": {"messages_days": messages_days}}}
        if messages_days is not None
        else {"$unset": {"retention": ""}}
    )
    doc = await db[ACCOUNTS].find_one_and_update({"_id": account_id}, update, return_document=ReturnDocument.AFTER)
    return doc


def accounts_with_retention(db: AsyncDatabase):
    return db[ACCOUNTS].find({"retention.messages_days": {"$gt": 0}}, {"retention": 1})


async def get_retention(db: AsyncDatabase, account_id: str) -> int | None:
    doc = await db[ACCOUNTS].find_one({"_id": account_id}, {"retention": 1})
    return ((doc or {}).get("retention") or {}).get("messages_days")
