"""Retention of `sender_deliveries`: final records past the retention are pruned, records still in work never are,
and a command older than the retention is refused rather than risk sending it twice. (The running service's own
pruning is in test_service.py.)"""

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
from pydantic import ValidationError
from pymongo.asynchronous.database import AsyncDatabase

from mailstream_common.mongo import ensure_indexes
from mailstream_sender.repository import INDEXES, Deliveries, Mails
from mailstream_sender.retention import Pruner, is_past_retention, minimum_retention_hours, prune_cutoff
from mailstream_sender.settings import SenderSettings
from tests.sender.conftest import add_stream, reply_command
from tests.sender.test_replies import until

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


def test_cutoff_and_age_check_agree():
    assert prune_cutoff(NOW, 72) == NOW - timedelta(hours=72)
    assert is_past_retention(NOW - timedelta(hours=72, seconds=1), NOW, 72)
    assert not is_past_retention(NOW - timedelta(hours=71), NOW, 72)


def test_retention_must_outlive_the_retries():
    assert minimum_retention_hours(48 * 3600) == 49  # the maximum age plus the longest retry tier (an hour)
    assert SenderSettings().deliveries_retention_hours == 72
    SenderSettings(SENDER_MAX_AGE_SECONDS=3600, SENDER_DELIVERIES_RETENTION_HOURS=2)
    with pytest.raises(ValidationError, match="at least 49"):
        SenderSettings(SENDER_DELIVERIES_RETENTION_HOURS=48)


def record(state: str, age: timedelta, **fields) -> dict:
    return {
        "_id": uuid4().hex,
        "account_id": "acct",
        "state": state,
        "attempts": 1,
        "recipients": ["kana@example.net"],
        "created_at": NOW - age - timedelta(minutes=1),
        "updated_at": NOW - age,
        **fields,
    }


@pytest.mark.integration
async def test_only_final_records_past_retention_are_deleted_in_batches(mongo_db: AsyncDatabase):
    await ensure_indexes(mongo_db, INDEXES)
    deliveries = Deliveries(mongo_db)
    old_final = [record(state, timedelta(hours=80 + i)) for i, state in enumerate(["sent", "failed"] * 3)]
    kept = [
        record("sent", timedelta(hours=70)),  # final but recent: a redelivered copy or a bounce may still need it
        record("deferred", timedelta(hours=100)),  # still being worked on, however old
        record("sending", timedelta(hours=100)),
    ]
    await deliveries.collection.insert_many(old_final + kept)
    mails = Mails(mongo_db)
    for doc in old_final + kept:  # each record's signed bytes, kept apart
        await mails.keep(doc["_id"], "acct", b"Subject: x\r\n\r\nbody\r\n", "unsigned")

    pruner = Pruner(deliveries, retention_hours=72, interval_seconds=3600)
    assert await deliveries.delete_finished_before(prune_cutoff(NOW, 72), batch=4) == 6  # two batches
    assert {d["_id"] async for d in deliveries.collection.find({})} == {r["_id"] for r in kept}
    assert {d["_id"] async for d in mails.collection.find({})} == {r["_id"] for r in kept}  # mails go with them
    assert await pruner.prune_once(NOW) == 0  # idempotent: another replica pruning too changes nothing


@pytest.mark.integration
async def test_a_command_older_than_the_retention_is_refused_unless_its_record_says_it_was_sent(
    sender_factory, mongo_db, relay, acme_key
):
    """Its record may have been pruned, so "no record" no longer means "never sent": it is not sent. While the
    record of a sent one exists, a late copy is still only re-reported."""
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
