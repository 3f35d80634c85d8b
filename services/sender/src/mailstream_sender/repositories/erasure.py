"""Sender's part of a data erasure (issue 17): delivery records and stored signed mail of the messages to erase or
sent to the address, and the address's suppression entry (deleted, or kept as a keyed hash when asked).

Re-runnable: every step is a delete (or a rewrite of the address to its hash) that finds nothing the second time,
so a redelivery after a crash half-way completes the work. Stored mail goes before its delivery record, since the
record is how a re-run finds the mail of a message inbox did not list.
"""

from typing import Any

from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from mailstream_common.contracts import DataErasureRequested, DataExportRequested
from mailstream_common.erasure import address_key

from .deliveries import DELIVERIES
from .mails import MAILS
from .suppressions import SUPPRESSIONS

INDEXES = {DELIVERIES: [IndexModel([("account_id", ASCENDING), ("recipients", ASCENDING)], name="deliveries_to")]}


async def erase(db: AsyncDatabase, request: DataErasureRequested, *, hash_secret: bytes) -> dict[str, int]:
    deliveries, mails, suppressions = db[DELIVERIES], db[MAILS], db[SUPPRESSIONS]
    targets: dict[str, Any] = {"account_id": request.account_id}
    clauses: list[dict[str, Any]] = []
    if request.message_ids:
        clauses.append({"_id": {"$in": request.message_ids}})
    if request.address:
        clauses.append({"recipients": request.address})
    message_ids = set(request.message_ids)
    for clause in clauses:
        async for doc in deliveries.find({**targets, **clause}, {"_id": 1}):
            message_ids.add(doc["_id"])
    ids = sorted(message_ids)
    removed_mails = (await mails.delete_many({"_id": {"$in": ids}, "account_id": request.account_id})).deleted_count
    removed_deliveries = (
        await deliveries.delete_many({"_id": {"$in": ids}, "account_id": request.account_id})
    ).deleted_count
    counts = {"deliveries": removed_deliveries, "signed_mails": removed_mails}
    if request.address:
        counts.update(await _erase_suppression(suppressions, request, hash_secret))
    return counts


async def _erase_suppression(collection, request: DataErasureRequested, secret: bytes) -> dict[str, int]:
    query = {"account_id": request.account_id, "address": request.address}
    if not request.keep_suppression:
        return {"suppressions": (await collection.delete_many(query)).deleted_count}
    hashed = address_key(secret, request.address or "")
    # Keep whether it is suppressed and why, but neither the address nor the bounce details that name it.
    update = {
        "$set": {"address": hashed, "reason": "kept after an erasure request", "last_bounce": ""},
        "$unset": {"bounced_message_ids": ""},
    }
    try:
        result = await collection.update_one({**query, "suppressed": True}, update)
    except DuplicateKeyError:  # a hashed entry exists already (an earlier erasure): this one is a duplicate
        result = await collection.delete_one(query)
        return {"suppressions": result.deleted_count}
    removed = (await collection.delete_many(query)).deleted_count  # counted bounces that never suppressed it
    return {"suppressions_hashed": result.modified_count, "suppressions": removed}


async def export(db: AsyncDatabase, request: DataExportRequested) -> dict[str, list[dict[str, Any]]]:
    """The records that name the address: delivery records (the mail's bytes are in inbox's mbox) and the
    suppression entry."""
    query: dict[str, Any] = {"account_id": request.account_id}
    clauses = [
        {"recipients": request.address},
        *([{"_id": {"$in": request.message_ids}}] if request.message_ids else []),
    ]
    deliveries: dict[str, dict[str, Any]] = {}
    for clause in clauses:
        async for doc in db[DELIVERIES].find({**query, **clause}):
            deliveries[doc["_id"]] = doc
    suppressions = [doc async for doc in db[SUPPRESSIONS].find({**query, "address": request.address}, {"_id": 0})]
    return {"deliveries": list(deliveries.values()), "suppressions": suppressions}
