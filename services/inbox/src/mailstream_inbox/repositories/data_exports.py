"""`data_exports`: the archive of an export, in chunks, until it is downloaded (once) or expires (TTL index).

A chunk: _id "<request id>:<n>", request_id, n, chunks, data, expires_at. Writing is idempotent (`insert_once` per
chunk), so an archive built again after a crash lands once.
"""

from datetime import datetime

from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase

from mailstream_common.mongo import insert_once

COLLECTION = "data_exports"
CHUNK_BYTES = 1024 * 1024

INDEXES = {
    COLLECTION: [
        IndexModel([("request_id", ASCENDING), ("n", ASCENDING)], name="data_exports_chunks"),
        IndexModel([("expires_at", ASCENDING)], expireAfterSeconds=0, name="data_exports_expiry"),
    ]
}


async def put(db: AsyncDatabase, request_id: str, data: bytes, *, expires_at: datetime) -> None:
    chunks = max(1, -(-len(data) // CHUNK_BYTES))
    for n in range(chunks):
        doc = {
            "_id": f"{request_id}:{n}",
            "request_id": request_id,
            "n": n,
            "chunks": chunks,
            "data": data[n * CHUNK_BYTES : (n + 1) * CHUNK_BYTES],
            "expires_at": expires_at,
        }
        await insert_once(db[COLLECTION], doc, {"_id": doc["_id"]})


async def take(db: AsyncDatabase, request_id: str) -> bytes | None:
    """The archive's bytes, deleted as they are handed out (None if it is gone or incomplete)."""
    docs = await db[COLLECTION].find({"request_id": request_id}).sort([("n", ASCENDING)]).to_list(None)
    await db[COLLECTION].delete_many({"request_id": request_id})
    if not docs or [d["n"] for d in docs] != list(range(docs[0]["chunks"])):
        return None
    return b"".join(bytes(d["data"]) for d in docs)
