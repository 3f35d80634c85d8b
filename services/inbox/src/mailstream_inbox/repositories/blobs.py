"""Raw mail and attachment bytes, content-addressed: stored once per sha256, in chunks, read back byte for byte.

Why not GridFS: chunked documents with a unique (sha256, n) key make every write idempotent with `insert_once`
(a redelivered mail rewrites nothing, a crash half-way is completed by the redelivery). Chunks stay well under
every document-size limit.

A chunk document: _id, sha256, n (0-based), chunks (how many in all), size (of the whole blob), data (bytes).
Its `_id` is derived from (sha256, n), so writing, checking and reading are primary-key lookups.
"""

import hashlib

from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase

from mailstream_common.mongo import insert_once

from .messages import keyed_id

COLLECTION = "blobs"
CHUNK_BYTES = 1024 * 1024

INDEXES = {COLLECTION: [IndexModel([("sha256", ASCENDING), ("n", ASCENDING)], unique=True, name="blobs_chunk")]}


class CorruptBlob(RuntimeError):
    """Chunks are missing or the bytes do not match their digest."""


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def chunk_id(sha256: str, n: int) -> str:
    return keyed_id("blob", sha256, str(n))


async def put(db: AsyncDatabase, data: bytes) -> str:
    """Store `data` unless already stored; returns its sha256 (the blob id). Idempotent and safe to repeat."""
    sha256 = digest(data)
    chunks = max(1, -(-len(data) // CHUNK_BYTES))
    if await db[COLLECTION].find_one({"_id": chunk_id(sha256, chunks - 1)}, {"_id": 1}) is not None:
        return sha256  # chunks are written in order, so the last one present means all are
    for n in range(chunks):
        doc = {
            "_id": chunk_id(sha256, n),
            "sha256": sha256,
            "n": n,
            "chunks": chunks,
            "size": len(data),
            "data": data[n * CHUNK_BYTES : (n + 1) * CHUNK_BYTES],
        }
        await insert_once(db[COLLECTION], doc, {"_id": doc["_id"]})
    return sha256


async def get(db: AsyncDatabase, sha256: str) -> bytes | None:
    """The bytes of a blob, verified against their digest; None if there is no such blob."""
    docs = await db[COLLECTION].find({"sha256": sha256}).sort([("n", ASCENDING)]).to_list(None)  # blobs_chunk
    if not docs:
        return None
    if [d["n"] for d in docs] != list(range(docs[0]["chunks"])):
        raise CorruptBlob(f"blob {sha256}: {len(docs)} of {docs[0]['chunks']} chunks present")
    data = b"".join(bytes(d["data"]) for d in docs)
    if digest(data) != sha256:
        raise CorruptBlob(f"blob {sha256}: digest mismatch")
    return data
