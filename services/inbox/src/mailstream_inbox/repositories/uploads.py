"""Files agents upload to attach to replies and canned responses: a staging area that empties itself.

An upload is a metadata document in `uploads` and its bytes in `upload_chunks` (1 MiB each); both carry
`expires_at` under a TTL index, so an upload nobody referenced disappears by itself (MongoDB's TTL monitor).
Referencing one (a reply, a canned response) copies its bytes into `blobs` (content-addressed, permanent, like
every stored attachment); the upload itself still expires. Another account's upload is never found.
"""

import uuid
from datetime import datetime, timedelta
from typing import Any

from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase

from mailstream_common.contracts import utcnow

from . import blobs as blobs_repo

UPLOADS = "uploads"
CHUNKS = "upload_chunks"
CHUNK_BYTES = 1024 * 1024
UPLOAD_TTL = timedelta(hours=24)

INDEXES = {
    UPLOADS: [IndexModel([("expires_at", ASCENDING)], expireAfterSeconds=0, name="uploads_expiry")],
    CHUNKS: [
        IndexModel([("upload_id", ASCENDING), ("n", ASCENDING)], unique=True, name="upload_chunks_order"),
        IndexModel([("expires_at", ASCENDING)], expireAfterSeconds=0, name="upload_chunks_expiry"),
    ],
}


async def create(
    db: AsyncDatabase,
    account_id: str,
    *,
    filename: str,
    content_type: str,
    declared_content_type: str | None,
    data: bytes,
    now: datetime | None = None,
) -> dict[str, Any]:
    now = now or utcnow()
    upload_id = uuid.uuid4().hex
    expires_at = now + UPLOAD_TTL
    chunks = max(1, -(-len(data) // CHUNK_BYTES))
    for n in range(chunks):  # chunks first: a metadata document always has all its bytes
        await db[CHUNKS].insert_one(
            {
                "_id": f"{upload_id}:{n}",
                "upload_id": upload_id,
                "n": n,
                "data": data[n * CHUNK_BYTES : (n + 1) * CHUNK_BYTES],
                "expires_at": expires_at,
            }
        )
    doc = {
        "_id": upload_id,
        "account_id": account_id,
        "filename": filename,
        "content_type": content_type,
        "declared_content_type": declared_content_type,
        "size": len(data),
        "sha256": blobs_repo.digest(data),
        "chunks": chunks,
        "created_at": now,
        "expires_at": expires_at,
    }
    await db[UPLOADS].insert_one(doc)
    return doc


async def get(db: AsyncDatabase, account_id: str, upload_id: str) -> dict[str, Any] | None:
    return await db[UPLOADS].find_one({"_id": upload_id, "account_id": account_id})


async def read(db: AsyncDatabase, upload: dict[str, Any]) -> bytes | None:
    """The upload's bytes, verified; None when they expired in the meantime."""
    docs = await db[CHUNKS].find({"upload_id": upload["_id"]}).sort([("n", ASCENDING)]).to_list(None)
    if [d["n"] for d in docs] != list(range(upload["chunks"])):
        return None
    data = b"".join(bytes(d["data"]) for d in docs)
    return data if blobs_repo.digest(data) == upload["sha256"] else None


async def keep(db: AsyncDatabase, account_id: str, upload_ids: list[str]) -> list[dict[str, Any]] | str:
    """Copy the named uploads into `blobs`; their attachment records (filename, content_type, size, sha256) in
    order, or the first id that is missing (never uploaded, expired, or another account's)."""
    records = []
    for upload_id in upload_ids:
        upload = await get(db, account_id, upload_id)
        data = await read(db, upload) if upload is not None else None
        if upload is None or data is None:
            return upload_id
        await blobs_repo.put(db, data)
        records.append(
            {
                "filename": upload["filename"],
                "content_type": upload["content_type"],
                "size": upload["size"],
                "sha256": upload["sha256"],
            }
        )
    return records
