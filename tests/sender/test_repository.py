"""Connection errors on a write are retried; any other error is raised at once. Suppression writes are one upsert."""

import asyncio

import pytest
from pymongo.errors import AutoReconnect, DuplicateKeyError, OperationFailure

from mailstream_common.mongo import ensure_indexes
from mailstream_sender.repository import INDEXES, Suppressions, with_retries


async def test_connection_errors_are_retried():
    calls = []

    async def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise AutoReconnect("connection closed")
        return "written"

    assert await with_retries(flaky) == "written"
    assert len(calls) == 3


@pytest.mark.parametrize(
    "error", [OperationFailure("unknown operator $foo"), DuplicateKeyError("E11000 duplicate key")]
)
async def test_other_errors_are_raised_at_once(error):
    calls = []

    async def broken():
        calls.append(1)
        raise error

    with pytest.raises(type(error)):
        await with_retries(broken)
    assert len(calls) == 1


async def test_gives_up_after_the_last_attempt():
    async def always_down():
        raise AutoReconnect("connection refused")

    with pytest.raises(AutoReconnect):
        await with_retries(always_down, attempts=3)


@pytest.mark.integration
async def test_concurrent_first_bounces_of_an_address_make_one_document_and_count_each(mongo_db):
    """One upsert per bounce: of concurrent first upserts one inserts and the others update what it inserted."""
    await ensure_indexes(mongo_db, INDEXES)
    suppressions = Suppressions(mongo_db)
    await asyncio.gather(
        *(
            suppressions.record_hard_bounce("acct", "Kana@Example.net", f"m{n}", "550 no such user", threshold=2)
            for n in range(8)
        )
    )
    [doc] = await suppressions.collection.find({"account_id": "acct"}).to_list()
    assert doc["address"] == "kana@example.net" and sorted(doc["bounced_message_ids"]) == [f"m{n}" for n in range(8)]
    assert doc["suppressed"] and doc["source"] == "bounces"
    again = await suppressions.suppress("acct", "kana@example.net", "asked us to stop")
    assert again.hard_bounces == 8 and again.source == "api"
    assert await suppressions.collection.count_documents({}) == 1
