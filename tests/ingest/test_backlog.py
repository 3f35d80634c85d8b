"""Back-pressure at the front door (issue 12): above the backlog limit new mail gets 451 at MAIL FROM, nothing that
got a 250 is lost, and mail is accepted again once the backlog has drained below the lower mark.

The gate's decision is a plain function (first tests); the last test runs ingest for real, over SMTP, against a
private RabbitMQ vhost whose `ingest.analyse` queue nobody consumes, so the backlog is real and grows mail by mail.
"""

import gc
import uuid

import aio_pika
import aio_pika.tools
import aiormq.exceptions
import httpx
import pytest

from mailstream_common import topology
from mailstream_common.broker import Broker
from mailstream_ingest.backlog import BacklogGate, QueueDepths
from tests.ingest.conftest import add_stream, queue_depth, run_ingest, take_messages
from tests.ingest.smtp_client import send
from tests.support.waiting import wait_for


def test_the_gate_shuts_above_the_limit_and_opens_only_below_the_lower_mark():
    gate = BacklogGate(limit=100)
    assert gate.observe({"ingest.analyse": 60, "inbox.store": 40}) is False and not gate.shut  # at the limit: open
    assert gate.observe({"ingest.analyse": 60, "inbox.store": 41}) is True and gate.shut
    assert gate.observe({"ingest.analyse": 50, "inbox.store": 31}) is False and gate.shut  # 81: still draining
    assert gate.observe({"ingest.analyse": 50, "inbox.store": 30}) is True and not gate.shut  # 80: open again


def test_a_limit_of_zero_never_shuts():
    gate = BacklogGate(limit=0)
    assert gate.observe({"ingest.analyse": 10**9}) is False and not gate.shut


RAW = b"From: Jane <jane@customer.example>\r\nTo: support@acme.example\r\nSubject: burst\r\n\r\nHello\r\n"


async def _refusing(ops_url: str) -> bool:
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"{ops_url}/metrics", timeout=2)).text
    return "mailstream_ingest_backlog_refusing 1.0" in text


@pytest.mark.integration
async def test_a_backlog_above_the_limit_gets_451_at_mail_from_and_drains_back_to_250(vhost, mongo_db, backends):
    amqp_url = vhost[1]
    async with run_ingest(
        amqp_url,
        mongo_db,
        backends.mongodb_uri,
        INGEST_ROLE="smtp",  # nobody analyses: what ingest accepts stays on ingest.analyse
        INGEST_BACKLOG_LIMIT=3,
        INGEST_BACKLOG_CHECK_SECONDS=0.1,
    ) as running:
        stream = await add_stream(mongo_db)
        rcpt = [stream["forwarding_address"]]
        baseline = await queue_depth(amqp_url, topology.INGEST_ANALYSE.name)
        assert baseline == 0, "the vhost is private to this module; nothing else fills the queue"

        accepted = [(await send(running.smtp_port, "jane@customer.example", rcpt, RAW)).mail_id for _ in range(4)]
        await wait_for(lambda: _refusing(running.ops_url), timeout=15, what="the gate to shut above 3 waiting")

        refused = await send(running.smtp_port, "jane@customer.example", rcpt, RAW)
        assert refused.mail is not None and refused.mail[0] == 451 and b"4.3.2" in refused.mail[1]
        assert refused.data is None  # refused before the mail was transmitted

        # Drain to the lower mark (int(3 * 0.8) = 2): take two, the oldest first.
        taken = await take_messages(amqp_url, topology.INGEST_ANALYSE.name, 2, correlation_ids=set(accepted[:2]))

        async def accepting() -> bool:
            return not await _refusing(running.ops_url)

        await wait_for(accepting, timeout=15, what="the gate to open once the backlog is 2")
        after = await send(running.smtp_port, "jane@customer.example", rcpt, RAW)
        accepted.append(after.mail_id)

        # Nothing that got a 250 was lost or doubled; the refused attempt left nothing behind.
        rest = await take_messages(amqp_url, topology.INGEST_ANALYSE.name, 3, correlation_ids=set(accepted[2:]))
        assert sorted(m.correlation_id for m in taken + rest) == sorted(accepted)
        assert await queue_depth(amqp_url, topology.INGEST_ANALYSE.name) == 0


# --- reading the depths, over the broker connection ingest keeps (issue 12: ingest's RSS grew ~28 MB/h) ---


def _close_callbacks_alive() -> int:
    """aio-pika's per-channel close callbacks still in memory: one stays behind for every channel that leaked."""
    gc.collect()
    return sum(1 for o in gc.get_objects() if isinstance(o, aio_pika.tools.OneShotCallback))


async def _broker(amqp_url: str) -> Broker:
    broker = Broker(amqp_url, service="ingest-test")
    await broker.connect()
    await broker.declare(topology.INGEST_ANALYSE)
    return broker


@pytest.mark.integration
@pytest.mark.parametrize(
    "reader",
    [
        pytest.param(lambda broker: QueueDepths(broker.connection).read, id="QueueDepths"),
        pytest.param(
            lambda broker: broker.queue_depth,
            id="a channel per read",
            marks=pytest.mark.xfail(
                strict=True, reason="aio-pika 10.2 / aiormq 7.2 keep ~3.5 KB per closed channel (QueueDepths docstring)"
            ),
        ),
    ],
)
async def test_reading_depths_every_second_for_hours_does_not_grow_memory(vhost, reader):
    broker = await _broker(vhost[1])
    try:
        read = reader(broker)
        await read(topology.INGEST_ANALYSE.name)  # the first read opens what later reads reuse
        before = _close_callbacks_alive()
        for _ in range(300):  # 150 s of the default watch (two queues a second)
            await read(topology.INGEST_ANALYSE.name)
        assert _close_callbacks_alive() - before < 5
    finally:
        await broker.close(1)


@pytest.mark.integration
async def test_the_depth_is_read_from_the_broker_each_time_and_a_missing_queue_does_not_stop_later_reads(vhost):
    broker = await _broker(vhost[1])
    queue = f"ingest-test-depth-{uuid.uuid4().hex[:8]}"
    try:
        channel = await broker.connection.channel()
        await channel.declare_queue(queue, auto_delete=False)
        depths = QueueDepths(broker.connection)
        assert await depths.read(queue) == 0
        for _ in range(3):
            await channel.default_exchange.publish(aio_pika.Message(b"x"), routing_key=queue)

        async def three() -> bool:
            return await depths.read(queue) == 3  # not aio-pika's cached answer of the first read

        await wait_for(three, timeout=10, what="the depth to reach 3")
        with pytest.raises(aiormq.exceptions.ChannelNotFoundEntity):
            await depths.read(f"{queue}-absent")
        assert await depths.read(queue) == 3
        await channel.queue_delete(queue)
        await channel.close()
    finally:
        await broker.close(1)
