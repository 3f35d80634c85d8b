"""Retention of `sender_deliveries` and `sender_mails` by TTL indexes: a record gets its expiry when it becomes final
(never while in work), its mail an expiry that outlives it, and a command older than the retention is refused rather
than risk sending it twice. The TTL monitor's own timing is the server's and is not waited on here."""

import asyncio
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
from pydantic import ValidationError
from pymongo.asynchronous.database import AsyncDatabase

from mailstream_common.mongo import ensure_indexes
from mailstream_sender.repository import DELIVERIES, INDEXES, MAILS, Deliveries, Mails
from mailstream_sender.retention import is_past_retention, mail_expires_at, minimum_retention_hours, record_expires_at
from mailstream_sender.settings import SenderSettings
from tests.sender.conftest import add_stream, reply_command
from tests.sender.test_replies import until

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


def test_age_check_and_expiries_agree():
    assert is_past_retention(NOW - timedelta(hours=72, seconds=1), NOW, 72)
    assert not is_past_retention(NOW - timedelta(hours=71), NOW, 72)
    assert record_expires_at(NOW, 72) == NOW + timedelta(hours=72)
    # A mail stored now outlives its record even if that becomes final only at the very end of its retries.
    latest_final = NOW + timedelta(hours=minimum_retention_hours(48 * 3600))
    assert mail_expires_at(NOW, 72, 48 * 3600) == record_expires_at(latest_final, 72) == NOW + timedelta(hours=121)


def test_retention_must_outlive_the_retries():
    assert minimum_retention_hours(48 * 3600) == 49  # the maximum age plus the longest retry tier (an hour)
    assert SenderSettings().deliveries_retention_hours == 72
    SenderSettings(SENDER_MAX_AGE_SECONDS=3600, SENDER_DELIVERIES_RETENTION_HOURS=2)
    with pytest.raises(ValidationError, match="at least 49"):
        SenderSettings(SENDER_DELIVERIES_RETENTION_HOURS=48)


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
async def test_a_sent_mail_and_its_record_get_their_expiries(sender_factory, mongo_db, acme_key):
    harness = await sender_factory(retention_hours=72, max_age_seconds=600)
    stream = await add_stream(mongo_db, acme_key.account_id)
    command = reply_command(acme_key.account_id, stream["_id"])
    await harness.send(command)
    await until(lambda: harness.final_report(command.message_id), what="the mail sent")
    record = await mongo_db[DELIVERIES].find_one({"_id": command.message_id})
    mail = await Mails(mongo_db).collection.find_one({"_id": command.message_id})
    # Set from the sender's clock, a moment apart from the stamps the repository writes.
    assert abs(record["expires_at"] - record["updated_at"] - timedelta(hours=72)) < timedelta(seconds=30)
    assert abs(mail["expires_at"] - mail["created_at"] - timedelta(hours=72 + 1 + 600 / 3600)) < timedelta(seconds=30)
    assert mail["expires_at"] > record["expires_at"]


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


@pytest.mark.integration
async def test_a_command_older_than_the_retention_is_refused_unless_its_record_says_it_was_sent(
    sender_factory, mongo_db, relay, acme_key
):
    """Its record may have expired, so "no record" no longer means "never sent": it is not sent. While the record
    of a sent one exists, a late copy is still only re-reported."""
    harness = await sender_factory(retention_hours=72)
    stream = await add_stream(mongo_db, acme_key.account_id)
    long_ago = datetime.now(UTC) - timedelta(hours=73)

    sent = reply_command(acme_key.account_id, stream["_id"])
    await harness.send(sent)
    first = await until(lambda: harness.final_report(sent.message_id), what="the first copy sent")
    late_copy = sent.model_copy(update={"occurred_at": long_ago})
    await harness.send(late_copy)
    await until(lambda: len(harness.reports_for(sent.message_id)) == 2, what="the late copy re-reported")
    assert harness.reports_for(sent.message_id)[1].relay_queue_id == first.relay_queue_id

    stale = reply_command(acme_key.account_id, stream["_id"], occurred_at=long_ago)
    await harness.send(stale)
    report = await until(lambda: harness.final_report(stale.message_id), what="the stale command refused")
    assert report.status == "failed" and report.permanent
    assert "older than the delivery records are kept (72 h)" in report.detail
    assert len(relay.messages()) == 1  # only the first command ever reached the relay
