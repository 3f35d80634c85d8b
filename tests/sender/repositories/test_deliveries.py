"""`sender_deliveries`: a record gets its expiry when it becomes final (never while in work) and is never changed
after; of concurrent first attempts exactly one inserts. The TTL indexes of records and mails."""

import asyncio
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from mailstream_common.mongo import ensure_indexes
from mailstream_sender.repositories import INDEXES
from mailstream_sender.repositories.deliveries import DELIVERIES, Deliveries
from mailstream_sender.repositories.mails import MAILS

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


@pytest.mark.integration
async def test_records_and_mails_have_ttl_indexes_on_their_expiry(mongo_db: AsyncDatabase):
    await ensure_indexes(mongo_db, INDEXES)
    records = (await mongo_db[DELIVERIES].index_information())["deliveries_expiry"]
    assert records["key"] == [("expires_at", 1)] and records["expireAfterSeconds"] == 0
    assert records["partialFilterExpression"] == {"expires_at": {"$exists": True}}  # records in work stay out
    mails = (await mongo_db[MAILS].index_information())["mails_expiry"]
    assert mails["key"] == [("expires_at", 1)] and mails["expireAfterSeconds"] == 0


@pytest.mark.integration
async def test_a_record_gets_its_expiry_when_it_becomes_final_and_is_never_changed_after(mongo_db: AsyncDatabase):
    await ensure_indexes(mongo_db, INDEXES)
    deliveries = Deliveries(mongo_db)
    message_id = uuid4().hex
    await deliveries.begin_attempt(message_id, "acct", ["kana@example.net"])
    assert await deliveries.finish(message_id, "acct", ["kana@example.net"], "deferred", detail="try later")
    assert "expires_at" not in await deliveries.collection.find_one({"_id": message_id})

    expires = NOW + timedelta(hours=72)
    assert await deliveries.finish(message_id, "acct", ["kana@example.net"], "sent", detail="250", expires_at=expires)
    # A slower worker's outcome comes second: the final record stays as it is.
    assert not await deliveries.finish(message_id, "acct", ["kana@example.net"], "deferred", detail="late")
    assert not await deliveries.finish(
        message_id, "acct", ["kana@example.net"], "failed", detail="late", expires_at=NOW + timedelta(hours=99)
    )
    doc = await deliveries.collection.find_one({"_id": message_id})
    assert (doc["state"], doc["detail"], doc["expires_at"]) == ("sent", "250", expires)


@pytest.mark.integration
async def test_of_concurrent_first_attempts_exactly_one_inserts_and_every_attempt_counts(mongo_db: AsyncDatabase):
    await ensure_indexes(mongo_db, INDEXES)
    deliveries = Deliveries(mongo_db)
    message_id = uuid4().hex
    results = await asyncio.gather(
        *(deliveries.begin_attempt(message_id, "acct", ["kana@example.net"]) for _ in range(8))
    )
    assert sorted(first for _, first in results) == [False] * 7 + [True]
    assert sorted(record.attempts for record, _ in results) == list(range(1, 9))
    assert (await deliveries.get(message_id)).attempts == 8

    outcomes = await asyncio.gather(
        *(
            deliveries.finish(message_id, "acct", ["kana@example.net"], "sent", detail=f"worker {n}", expires_at=NOW)
            for n in range(8)
        )
    )
    assert sorted(outcomes) == [False] * 7 + [True]
    winner = outcomes.index(True)
    assert (await deliveries.get(message_id)).detail == f"worker {winner}"
    # Once final, no attempt begins: every caller sees the final record.
    again = await asyncio.gather(*(deliveries.begin_attempt(message_id, "acct", []) for _ in range(8)))
    assert {(record.state, record.attempts, first) for record, first in again} == {("sent", 8, False)}
