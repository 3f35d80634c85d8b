"""Content-addressed chunked blobs on the real database: stored once, read back byte for byte, damage detected."""

import os

import pytest

from mailstream_inbox.repositories import blobs


@pytest.mark.parametrize("size", [0, 1, blobs.CHUNK_BYTES, 2 * blobs.CHUNK_BYTES + 7])
async def test_blob_round_trip_is_byte_identical_and_stored_once(mongo_db, size):
    data = os.urandom(size)
    sha256 = await blobs.put(mongo_db, data)
    assert await blobs.put(mongo_db, data) == sha256
    assert await blobs.get(mongo_db, sha256) == data
    assert await mongo_db[blobs.COLLECTION].count_documents({"sha256": sha256}) == max(1, -(-size // blobs.CHUNK_BYTES))


async def test_missing_and_damaged_blobs(mongo_db):
    assert await blobs.get(mongo_db, "0" * 64) is None
    data = os.urandom(2 * blobs.CHUNK_BYTES + 1)
    sha256 = await blobs.put(mongo_db, data)
    await mongo_db[blobs.COLLECTION].delete_one({"_id": blobs.chunk_id(sha256, 1)})
    with pytest.raises(blobs.CorruptBlob):
        await blobs.get(mongo_db, sha256)
