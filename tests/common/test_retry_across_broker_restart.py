"""A message waiting in a retry queue survives a RabbitMQ restart and comes back to its work queue (found by the
fault suite's large run, issue 12).

The retry tiers were classic queues whose expired messages were dead-lettered back to the work queue. A classic
queue dead-letters at most once: a message that expired while the node was down was dead-lettered as the node
recovered, before the work queue (a quorum queue) had its leader again, and was dropped without a trace. The fault
suite saw a reply deferred (domains unreachable) just before the restart never sent. The tiers are now shared
quorum queues that dead-letter at least once (`topology.declare_retry_tier`).

Real RabbitMQ: a private node of this test's own (never the shared one), stopped and started on its storage.
"""

import asyncio
import uuid

import pytest

from mailstream_common import topology
from mailstream_common.broker import Broker, Delivery, Retry
from mailstream_common.contracts import StreamChanged
from tests.reliability.fault_support import PrivateRabbit, private_rabbit_unavailable
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

MESSAGES = 20
MORE_QUEUES = 30


@pytest.fixture
def rabbit():
    if why := private_rabbit_unavailable():
        pytest.skip(f"SKIPPED, NOT PASSED: this test restarts a RabbitMQ node of its own; {why}")
    node = PrivateRabbit()
    try:
        yield node.start()
    finally:
        node.destroy()


def _event() -> StreamChanged:
    return StreamChanged(
        change="created",
        version=1,
        account_id="a1",
        topic_id="t1",
        stream_id=uuid.uuid4().hex,
        address="support@acme.test",
        forwarding_address="x@in.mailstream.test",
        allow_agent_send=True,
    )


async def test_a_message_in_a_retry_queue_during_a_broker_restart_is_retried_after_it(rabbit: PrivateRabbit):
    spec = topology.QueueSpec("test.retry.restart", (StreamChanged,), retry_delays=(5,), max_attempts=5)
    broker = Broker(rabbit.url, service="test-retry-restart")
    await broker.connect()
    attempts: list[int] = []

    async def handle(event: StreamChanged, delivery: Delivery) -> None:
        attempts.append(delivery.attempt)
        if delivery.attempt == 1:
            raise Retry("the domains service is unreachable", delay=5)

    # As many quorum queues as a deployment has: after the restart their leaders are elected one after another.
    for n in range(MORE_QUEUES):
        await broker.declare(topology.QueueSpec(f"test.other.{n}", (), retry_delays=(600,)))

    broker.consume(spec, handle, StreamChanged)
    try:
        await broker.start()
        for _ in range(MESSAGES):
            await broker.publish(_event())
        # The first attempts failed and their copies wait in the 5 s retry queue (the originals acked).
        await wait_for(
            lambda: asyncio.sleep(0, rabbit.queue_depths().get(spec.retry_queue(5)) == MESSAGES),
            timeout=20,
            what="the message waiting in the retry queue",
        )
        await asyncio.to_thread(rabbit.stop)
        await asyncio.sleep(6)  # the fault: the node stays down longer than the retry delay
        await asyncio.to_thread(rabbit.start)
        await wait_for(
            lambda: asyncio.sleep(0, attempts.count(2) == MESSAGES),
            timeout=60,
            what=f"every retry after the restart (so far {attempts.count(2)} of {MESSAGES})",
        )
    finally:
        await broker.close(grace=2)
