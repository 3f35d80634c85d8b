"""Retention is the server's: TTL indexes on `expires_at`, and each run and auto-reply record gets its expiry when it
is written (the TTL monitor's own timing is not waited on here)."""

from datetime import timedelta

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from mailstream_automation.repository import AUTO_REPLIES, RUNS, ensure_indexes
from tests.automation.support import stored_message
from tests.automation.test_consumer import AUTO_REPLY, TAG, Automation, automation  # noqa: F401 - the fixture

pytestmark = pytest.mark.integration


async def test_runs_and_auto_reply_records_have_ttl_indexes_on_their_expiry(mongo_db: AsyncDatabase):
    await ensure_indexes(mongo_db)
    for collection, name in ((RUNS, "runs_expiry"), (AUTO_REPLIES, "auto_replies_expiry")):
        index = (await mongo_db[collection].index_information())[name]
        assert index["key"] == [("expires_at", 1)] and index["expireAfterSeconds"] == 0, (collection, index)


async def test_a_run_expires_after_the_retention_and_an_auto_reply_record_after_the_longer_of_it_and_the_interval(
    automation: Automation,
):
    rule = await automation.add_rule(actions=[AUTO_REPLY, TAG])
    message = stored_message(automation.account_id)
    await automation.deliver(message)
    await automation.tap.wait_for_message(message.message_id)
    [run] = await automation.runs_of(message.message_id)
    assert run["expires_at"] - run["at"] == timedelta(days=30)  # AUTOMATION_RUNS_RETENTION_DAYS
    record = await automation.runs.auto_replies.find_one({"_id": f"{rule.id}:kana@example.net"})
    assert record["message_id"] == message.message_id
    assert record["expires_at"] - record["last_at"] == timedelta(days=30)  # longer than the 24 h interval
