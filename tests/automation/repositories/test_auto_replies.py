"""The auto-reply allowance of a rule and customer is one conditional upsert on its natural key: of concurrent
messages exactly one gets it, a redelivered message keeps its own, and the next interval gives it anew."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from mailstream_automation.repositories import AutoRepliesRepository, ensure_indexes

pytestmark = pytest.mark.integration

INTERVAL = timedelta(hours=24)


async def test_of_concurrent_messages_exactly_one_gets_the_auto_reply(mongo_db: AsyncDatabase):
    await ensure_indexes(mongo_db)
    replies = AutoRepliesRepository(mongo_db)
    now = datetime.now(UTC)
    keep = now + timedelta(days=30)
    messages = [uuid.uuid4().hex for _ in range(8)]
    results = await asyncio.gather(
        *(replies.take("rule-1", "kana@example.net", m, now, INTERVAL, keep_until=keep) for m in messages)
    )
    winners = [m for m, (allowed, _) in zip(messages, results, strict=True) if allowed]
    assert len(winners) == 1
    assert all(last_at is not None for allowed, last_at in results if not allowed)

    # A redelivery of the winner keeps its allowance; another message does not get one.
    assert (await replies.take("rule-1", "kana@example.net", winners[0], now, INTERVAL, keep_until=keep))[0]
    assert not (await replies.take("rule-1", "kana@example.net", "other", now, INTERVAL, keep_until=keep))[0]
    # Another rule or another customer has its own; after the interval the next message gets it again.
    assert (await replies.take("rule-2", "kana@example.net", "m", now, INTERVAL, keep_until=keep))[0]
    assert (await replies.take("rule-1", "ren@example.org", "m", now, INTERVAL, keep_until=keep))[0]
    later = now + INTERVAL + timedelta(seconds=1)
    assert (await replies.take("rule-1", "kana@example.net", "next", later, INTERVAL, keep_until=keep))[0]
