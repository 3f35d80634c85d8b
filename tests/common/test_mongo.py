"""The idempotent-write pattern and index bootstrap on the real Mongo-protocol server (SecantusDB in CI)."""

import pytest
from pymongo import ASCENDING, IndexModel
from pymongo.errors import DuplicateKeyError

from mailstream_common.mongo import ensure_indexes, insert_once


async def test_insert_once_keeps_the_first_and_reports_duplicates(mongo_db):
    await ensure_indexes(
        mongo_db, {"things": [IndexModel([("stream_id", ASCENDING), ("key", ASCENDING)], unique=True)]}
    )
    _, created = await insert_once(
        mongo_db.things, {"_id": "one", "stream_id": "s", "key": "k", "v": 1}, {"stream_id": "s", "key": "k"}
    )
    again, created_again = await insert_once(
        mongo_db.things, {"_id": "two", "stream_id": "s", "key": "k", "v": 2}, {"stream_id": "s", "key": "k"}
    )
    assert created and not created_again
    assert again["_id"] == "one" and again["v"] == 1
    assert await mongo_db.things.count_documents({}) == 1


async def test_ensure_indexes_is_idempotent(mongo_db):
    spec = {"things": [IndexModel([("a", ASCENDING)], unique=True), IndexModel([("b", ASCENDING)])]}
    await ensure_indexes(mongo_db, spec)
    await ensure_indexes(mongo_db, spec)
    await mongo_db.things.insert_one({"a": 1})
    with pytest.raises(DuplicateKeyError):
        await mongo_db.things.insert_one({"a": 1})
