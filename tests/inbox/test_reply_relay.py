"""The reply relay: an agent's reply stored by a request that died before publishing it (found by the fault suite,
issue 12: kill -9 of the inbox between the two steps left the reply 'queued' forever) is published later, once.

Real parts: the replies are stored in the real database by the inbox's own repository, and the relay publishes to a
real RabbitMQ (a vhost of its own, so no sender of another test takes the request).
"""

import asyncio
import uuid
from datetime import timedelta

import pytest

from mailstream_common import topology
from mailstream_common.broker import Broker
from mailstream_common.contracts import Address, ReplyRequested, utcnow
from mailstream_inbox.outbox import relay_stranded_replies
from mailstream_inbox.repositories import ensure_indexes
from mailstream_inbox.repositories import messages as messages_repo
from tests.support.backends import Backends, isolated_vhost

pytestmark = pytest.mark.integration

RELAY_AFTER_S = 60.0


def _reply(stored_ago_s: float, *, held: bool = False) -> dict:
    message_id = uuid.uuid4().hex
    created = utcnow() - timedelta(seconds=stored_ago_s)
    event = ReplyRequested(
        account_id="a1",
        stream_id="s1",
        conversation_id="c1",
        message_id=message_id,
        message_id_header=f"<{message_id}@in.mailstream.test>",
        **{"from": Address(address="support@acme.test")},
        to=[Address(address="ann@example.net")],
        subject="Re: order",
        text="Hello",
        requested_by="agent:k1",
    )
    doc = {
        "_id": message_id,
        "stream_id": "s1",
        "dedup_key": message_id,
        "conversation_id": "c1",
        "direction": "outbound",
        "created_at": created,
        "delivery": {"status": "queued", "detail": ""},
        "pending_event": event.model_dump(mode="json", by_alias=True),
    }
    if held:
        doc["schedule"] = {"state": "held", "send_at": utcnow() + timedelta(days=1)}
    else:
        doc[messages_repo.PENDING_SINCE] = created
    return doc


async def _depth(broker: Broker, name: str) -> int:
    channel = await broker.connection.channel()
    try:
        return (await channel.declare_queue(name, passive=True)).declaration_result.message_count
    finally:
        await channel.close()


async def test_a_stranded_reply_is_published_once_and_nothing_else_is(backends: Backends, mongo_db):
    await ensure_indexes(mongo_db)
    stranded, recent, held, failed = _reply(120), _reply(5), _reply(120, held=True), _reply(120)
    await mongo_db[messages_repo.COLLECTION].insert_many([stranded, recent, held, failed])
    # The route saw the broker refuse this one and told the caller it failed: it must never leave later.
    await messages_repo.mark_failed_to_queue(mongo_db, failed["_id"], "not queued: the message broker was unavailable")

    with isolated_vhost(backends.amqp_url) as amqp_url:
        broker = Broker(amqp_url, service="test-relay")
        await broker.connect()
        capture = topology.QueueSpec(f"test.relay.{uuid.uuid4().hex[:8]}", (ReplyRequested,), retry_delays=(1,))
        await broker.declare(capture)
        try:
            # Two replicas' relays at the same moment: the publication lease lets one publish.
            counts = await asyncio.gather(
                relay_stranded_replies(mongo_db, broker, older_than_seconds=RELAY_AFTER_S),
                relay_stranded_replies(mongo_db, broker, older_than_seconds=RELAY_AFTER_S),
            )
            assert sorted(counts) == [0, 1]
            assert await _depth(broker, capture.name) == 1
            assert await relay_stranded_replies(mongo_db, broker, older_than_seconds=RELAY_AFTER_S) == 0
            assert await _depth(broker, capture.name) == 1
        finally:
            await broker.close(grace=5)

    after = {doc["_id"]: doc async for doc in mongo_db[messages_repo.COLLECTION].find({})}
    assert after[stranded["_id"]].get("published") is True
    assert messages_repo.PENDING_SINCE not in after[stranded["_id"]]
    assert not after[recent["_id"]].get("published")  # its route may still be publishing it
    assert not after[held["_id"]].get("published")  # leaves by its wake-up, at its time
    assert not after[failed["_id"]].get("published")
    assert after[failed["_id"]]["delivery"]["status"] == "failed"
