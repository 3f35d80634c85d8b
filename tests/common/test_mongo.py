"""The idempotent-write pattern and index bootstrap on the real Mongo-protocol server (SecantusDB in CI)."""

import uuid

import pytest
from prometheus_client import REGISTRY
from pymongo import ASCENDING, IndexModel
from pymongo.errors import DuplicateKeyError

from mailstream_common.mongo import command_collection, create_client, ensure_indexes, insert_once


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


def test_command_collection_names_the_collection_or_nothing():
    assert command_collection("find", {"find": "messages", "filter": {}}) == "messages"
    assert command_collection("update", {"update": "conversations", "updates": []}) == "conversations"
    assert command_collection("getMore", {"getMore": 123, "collection": "messages"}) == "messages"
    assert command_collection("hello", {"hello": 1}) is None
    assert command_collection("endSessions", {"endSessions": [{}]}) is None


def database_seconds(command: str, collection: str) -> tuple[float, float]:
    """(count, sum) of the command's latency histogram so far; the registry is the process's."""
    labels = {"command": command, "collection": collection}
    count = REGISTRY.get_sample_value("mailstream_database_command_seconds_count", labels) or 0.0
    total = REGISTRY.get_sample_value("mailstream_database_command_seconds_sum", labels) or 0.0
    return count, total


async def test_the_client_times_each_collection_command_and_counts_failures(backends):
    client = create_client(backends.mongodb_uri, app_name="test-command-timer")
    collection = f"timed_{uuid.uuid4().hex[:8]}"
    db = client[f"{backends.database}_timer"]
    try:
        inserts_before, _ = database_seconds("insert", collection)
        finds_before, find_seconds_before = database_seconds("find", collection)
        failures_before = (
            REGISTRY.get_sample_value(
                "mailstream_database_command_failures_total", {"command": "insert", "collection": collection}
            )
            or 0.0
        )
        await db[collection].insert_one({"_id": 1})
        with pytest.raises(DuplicateKeyError):
            await db[collection].insert_one({"_id": 1})
        assert await db[collection].find_one({"_id": 1}) == {"_id": 1}
        await client.admin.command("ping")  # about the server: not timed under any collection

        inserts, _ = database_seconds("insert", collection)
        finds, find_seconds = database_seconds("find", collection)
        failures = REGISTRY.get_sample_value(
            "mailstream_database_command_failures_total", {"command": "insert", "collection": collection}
        )
        assert (inserts - inserts_before, finds - finds_before, failures - failures_before) == (2, 1, 1)
        assert find_seconds > find_seconds_before
        assert database_seconds("ping", "admin") == (0.0, 0.0)
    finally:
        await client.drop_database(db.name)
        await client.close()
