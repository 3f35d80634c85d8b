"""Uploads on the real database: chunked, tenant-scoped, expiring (TTL indexes), kept into blobs when referenced."""

import os

from mailstream_common import mongo
from mailstream_inbox.repositories import blobs, uploads


async def test_an_upload_reads_back_and_is_kept_into_blobs(mongo_db):
    data = os.urandom(2 * uploads.CHUNK_BYTES + 5)
    doc = await uploads.create(
        mongo_db, "a1", filename="請求書.pdf", content_type="application/pdf", declared_content_type=None, data=data
    )
    assert doc["chunks"] == 3 and doc["size"] == len(data)
    assert await uploads.read(mongo_db, doc) == data
    assert await uploads.get(mongo_db, "a2", doc["_id"]) is None  # another account's id is nobody's

    kept = await uploads.keep(mongo_db, "a1", [doc["_id"]])
    assert kept == [
        {"filename": "請求書.pdf", "content_type": "application/pdf", "size": len(data), "sha256": doc["sha256"]}
    ]
    assert await blobs.get(mongo_db, doc["sha256"]) == data
    assert await uploads.keep(mongo_db, "a2", [doc["_id"]]) == doc["_id"]
    assert await uploads.keep(mongo_db, "a1", ["missing"]) == "missing"


async def test_an_upload_missing_a_chunk_is_gone(mongo_db):
    doc = await uploads.create(
        mongo_db, "a1", filename="x.bin", content_type="application/octet-stream", declared_content_type=None,
        data=os.urandom(uploads.CHUNK_BYTES + 1),
    )  # fmt: skip
    await mongo_db[uploads.CHUNKS].delete_one({"_id": f"{doc['_id']}:1"})  # as the TTL monitor would
    assert await uploads.read(mongo_db, doc) is None
    assert await uploads.keep(mongo_db, "a1", [doc["_id"]]) == doc["_id"]


async def test_uploads_expire_by_ttl_index(mongo_db):
    await mongo.ensure_indexes(mongo_db, uploads.INDEXES)
    for collection in (uploads.UPLOADS, uploads.CHUNKS):
        indexes = await mongo_db[collection].index_information()
        ttl = [spec for spec in indexes.values() if "expireAfterSeconds" in spec]
        assert [(spec["key"], spec["expireAfterSeconds"]) for spec in ttl] == [([("expires_at", 1)], 0)]
