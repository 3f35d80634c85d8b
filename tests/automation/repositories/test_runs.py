"""`automation_runs` against the real database: a run is inserted once per (rule, message), and the decisions read
back are what finishing an earlier delivery needs."""

import uuid
from datetime import UTC, datetime

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from mailstream_automation.repositories import RunsRepository
from mailstream_automation.runs import run_id_for

pytestmark = pytest.mark.integration

AT = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def run(account: str, rule_id: str, message_id: str, **extra) -> dict:
    return {
        "_id": run_id_for(rule_id, message_id),
        "rule_id": rule_id,
        "rule_name": rule_id,
        "account_id": account,
        "message_id": message_id,
        "conversation_id": "c1",
        "fired": True,
        "actions": [{"type": "add_tags", "tags": ["t"]}],
        "matched_conditions": [],
        "published": False,
        "at": AT,
    } | extra


async def test_a_run_is_inserted_once_and_marked_published(mongo_db: AsyncDatabase):
    runs = RunsRepository(mongo_db)
    account = uuid.uuid4().hex
    first, created = await runs.insert_once(run(account, "r1", "m1"))
    assert created
    again, created = await runs.insert_once(run(account, "r1", "m1", fired=False))
    assert not created and again["fired"] is True
    await runs.insert_once(run(account, "r2", "m1", fired=False, actions=[]))

    decisions = await runs.decisions_for_message(account, "m1")
    assert set(decisions) == {"r1", "r2"}
    assert "matched_conditions" not in decisions["r1"]
    await runs.mark_published(first["_id"], AT)
    assert (await runs.decisions_for_message(account, "m1"))["r1"]["published"] is True
    assert len(await runs.for_message(account, "m1")) == 2
    assert await runs.for_message(uuid.uuid4().hex, "m1") == []
