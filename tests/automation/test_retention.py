"""Retention: old runs and auto-reply claims that no longer matter are deleted; the ones that still do are kept."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from mailstream_automation.repository import RunsRepository, ensure_indexes
from mailstream_automation.retention import Pruner, cutoffs
from tests.automation.support import automation_process
from tests.support.backends import Backends
from tests.support.waiting import wait_for

NOW = datetime(2025, 6, 1, 12, tzinfo=UTC)


def test_runs_go_after_the_retention_and_claims_after_the_longer_of_retention_and_interval():
    assert cutoffs(NOW, retention_days=30, auto_reply_interval_hours=24) == cutoffs(
        NOW, retention_days=30, auto_reply_interval_hours=0
    )
    limits = cutoffs(NOW, retention_days=30, auto_reply_interval_hours=24)
    assert limits.runs_before == limits.claims_before == NOW - timedelta(days=30)
    limits = cutoffs(NOW, retention_days=1, auto_reply_interval_hours=72)
    assert limits.runs_before == NOW - timedelta(days=1)
    assert limits.claims_before == NOW - timedelta(hours=72)  # a claim still limits replies for 72 h


def run(at: datetime, **fields) -> dict:
    return {
        "_id": uuid.uuid4().hex,
        "rule_id": uuid.uuid4().hex,
        "message_id": uuid.uuid4().hex,
        "account_id": "acct",
        "fired": True,
        "actions": [],
        "published": True,
        "at": at,
    } | fields


@pytest.mark.integration
async def test_pruning_deletes_only_what_is_past_retention(mongo_db: AsyncDatabase):
    await ensure_indexes(mongo_db)
    runs = RunsRepository(mongo_db)
    old = [run(NOW - timedelta(days=2, minutes=i)) for i in range(3)]
    kept = [run(NOW - timedelta(hours=23)), run(NOW, published=False)]
    await runs.collection.insert_many(old + kept)
    await runs.claims.insert_many(
        [
            {"_id": "r1:old@example.net", "last_at": NOW - timedelta(hours=73), "message_id": "m1", "rule_id": "r1"},
            # Older than the run retention, but the 72 h interval still holds it: it must stay.
            {"_id": "r1:recent@example.net", "last_at": NOW - timedelta(hours=71), "message_id": "m2", "rule_id": "r1"},
        ]
    )
    pruner = Pruner(runs, retention_days=1, auto_reply_interval_hours=72, interval_seconds=3600)

    assert await pruner.prune_once(NOW) == (3, 1)
    assert {d["_id"] async for d in runs.collection.find({})} == {r["_id"] for r in kept}
    assert [d["_id"] async for d in runs.claims.find({})] == ["r1:recent@example.net"]
    assert await pruner.prune_once(NOW) == (0, 0)  # idempotent: another replica pruning too changes nothing


@pytest.mark.integration
async def test_the_service_prunes_on_its_own(automation_backends: Backends, mongo_db: AsyncDatabase, tmp_path: Path):
    """The real process prunes at start and then every interval (a short one here)."""
    await ensure_indexes(mongo_db)
    runs = RunsRepository(mongo_db)
    now = datetime.now(UTC)
    recent = run(now - timedelta(days=29))
    await runs.collection.insert_many([run(now - timedelta(days=31)), recent])
    await runs.claims.insert_one({"_id": "r:old@example.net", "last_at": now - timedelta(days=31), "rule_id": "r"})
    b = automation_backends
    service = automation_process(
        "automation", b.amqp_url, b.mongodb_uri, mongo_db.name, tmp_path, AUTOMATION_PRUNE_INTERVAL_MINUTES="0.01"
    )
    await asyncio.to_thread(service.start)
    try:

        async def pruned() -> bool:
            return await runs.collection.count_documents({}) == 1 and await runs.claims.count_documents({}) == 0

        await wait_for(pruned, what="the old run and claim pruned")
        # A run recorded after start-up, already past retention, goes at the next interval (0.6 s).
        await runs.collection.insert_one(run(now - timedelta(days=40)))
        await wait_for(pruned, what="the next interval's pruning")
        assert [d["_id"] async for d in runs.collection.find({})] == [recent["_id"]]
    finally:
        await asyncio.to_thread(service.stop)
    assert service.proc is not None and service.proc.returncode == 0, service.logs()
