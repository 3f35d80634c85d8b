"""The broker helpers against a real RabbitMQ: confirms, ack, retry with delay, dead-lettering, shutdown."""

import asyncio
import gc
import uuid
from datetime import timedelta

import aio_pika
import pytest

from mailstream_common import topology
from mailstream_common.broker import Broker, Delivery, PublishError, Reject, Retry
from mailstream_common.contracts import SnoozeDue, StreamChanged, utcnow
from mailstream_common.metrics import MESSAGES_CONSUMED
from tests.support.waiting import wait_for


def _stream_event(**overrides) -> StreamChanged:
    fields = dict(
        change="created",
        version=1,
        account_id="a1",
        topic_id="t1",
        stream_id=uuid.uuid4().hex,
        address="support@acme.test",
        forwarding_address="x@in.mailstream.test",
        allow_agent_send=True,
    )
    return StreamChanged(**(fields | overrides))


def _spec() -> topology.QueueSpec:
    return topology.QueueSpec(f"test.{uuid.uuid4().hex[:8]}", (StreamChanged,), retry_delays=(1,), max_attempts=3)


async def _queue_depth(broker: Broker, name: str) -> int:
    channel = await broker.connection.channel()
    try:
        queue = await channel.declare_queue(name, passive=True)
        return queue.declaration_result.message_count
    finally:
        await channel.close()


async def test_published_event_reaches_consumer_with_correlation_id(backends):
    broker = Broker(backends.amqp_url, service="test")
    await broker.connect()
    received: list[tuple[StreamChanged, Delivery]] = []

    async def handle(event: StreamChanged, delivery: Delivery) -> None:
        received.append((event, delivery))

    spec = _spec()
    broker.consume(spec, handle, StreamChanged)
    await broker.start()
    sent = _stream_event()
    await broker.publish(sent, correlation_id="corr-1")
    await wait_for(lambda: asyncio.sleep(0, received), what="delivery")
    event, delivery = received[0]
    assert event.stream_id == sent.stream_id
    assert event.correlation_id == "corr-1"
    assert delivery.attempt == 1
    await broker.close()


async def test_failing_handler_is_retried_after_delay_then_succeeds(backends):
    broker = Broker(backends.amqp_url, service="test")
    await broker.connect()
    attempts: list[int] = []

    async def handle(event: StreamChanged, delivery: Delivery) -> None:
        attempts.append(delivery.attempt)
        if delivery.attempt < 2:
            raise Retry("not yet", delay=1)

    spec = _spec()
    broker.consume(spec, handle, StreamChanged)
    await broker.start()
    await broker.publish(_stream_event())
    await wait_for(lambda: asyncio.sleep(0, len(attempts) >= 2), timeout=10, what="second attempt")
    assert attempts == [1, 2]
    await broker.close()


async def test_poison_message_is_dead_lettered_after_max_attempts(backends):
    broker = Broker(backends.amqp_url, service="test")
    await broker.connect()
    attempts: list[int] = []

    async def handle(event: StreamChanged, delivery: Delivery) -> None:
        attempts.append(delivery.attempt)
        raise ValueError("boom")

    spec = _spec()
    broker.consume(spec, handle, StreamChanged)
    await broker.start()
    await broker.publish(_stream_event())
    await wait_for(lambda: _queue_depth(broker, spec.dead_letter_queue), timeout=15, what="dead letter")
    assert attempts == [1, 2, 3]
    await broker.close()


async def test_reject_dead_letters_at_once_with_origin(backends):
    broker = Broker(backends.amqp_url, service="test")
    await broker.connect()

    async def handle(event: StreamChanged, delivery: Delivery) -> None:
        raise Reject("never")

    spec = _spec()
    broker.consume(spec, handle, StreamChanged)
    await broker.start()
    await broker.publish(_stream_event())
    await wait_for(lambda: _queue_depth(broker, spec.dead_letter_queue), timeout=10, what="dead letter")
    channel = await broker.connection.channel()
    message = await (await channel.declare_queue(spec.dead_letter_queue, passive=True)).get()
    assert message.headers["x-origin-queue"] == spec.name
    assert "Reject: never" in message.headers["x-error"]
    await message.ack()
    await channel.close()
    await broker.close()


async def test_malformed_body_is_dead_lettered_not_crashing(backends):
    broker = Broker(backends.amqp_url, service="test")
    await broker.connect()
    handled: list[StreamChanged] = []

    async def handle(event: StreamChanged, delivery: Delivery) -> None:
        handled.append(event)

    spec = _spec()
    broker.consume(spec, handle, StreamChanged)
    await broker.start()
    channel = await broker.connection.channel()
    exchange = await topology.declare_exchange(channel)
    await exchange.publish(
        aio_pika.Message(b"{not json", headers={"x-event": "stream.changed"}), routing_key="stream.changed"
    )
    await broker.publish(_stream_event())
    await wait_for(lambda: _queue_depth(broker, spec.dead_letter_queue), timeout=10, what="dead letter")
    await wait_for(lambda: asyncio.sleep(0, handled), what="the good message after the bad one")
    await channel.close()
    await broker.close()


async def test_shutdown_requeues_work_that_does_not_finish_in_grace(backends):
    broker = Broker(backends.amqp_url, service="test")
    await broker.connect()
    started = asyncio.Event()

    async def handle(event: StreamChanged, delivery: Delivery) -> None:
        started.set()
        await asyncio.sleep(60)

    spec = _spec()
    broker.consume(spec, handle, StreamChanged)
    await broker.start()
    await broker.publish(_stream_event())
    await asyncio.wait_for(started.wait(), 10)
    await broker.close(grace=0.2)

    checker = Broker(backends.amqp_url, service="test-check")
    await checker.connect()
    assert await wait_for(lambda: _queue_depth(checker, spec.name), what="requeued message") == 1
    await checker.close()


async def test_publish_to_closed_connection_raises(backends):
    broker = Broker(backends.amqp_url, service="test")
    await broker.connect()
    await broker.connection.close()
    with pytest.raises(PublishError):
        await broker.publish(_stream_event(), timeout=2)


async def test_every_queue_of_the_process_exists_before_any_consumer_takes_work_and_readiness_waits(backends):
    """A handler that publishes to (or relies on) another queue of the same process must never find it missing:
    `start()` declares all queues before the first consumer begins, and `/readyz` stays false until then."""
    broker = Broker(backends.amqp_url, service="test")
    await broker.connect()
    first, second = _spec(), _spec()
    await broker.declare(first)
    await broker.publish(_stream_event())  # waiting in `first` before the process starts consuming
    second_existed: list[bool] = []

    async def handle_first(event: StreamChanged, delivery: Delivery) -> None:
        channel = await broker.connection.channel()
        try:
            await channel.declare_queue(second.name, passive=True)
            second_existed.append(True)
        except aio_pika.exceptions.ChannelNotFoundEntity:
            second_existed.append(False)
        finally:
            if not channel.is_closed:
                await channel.close()

    async def handle_second(event: StreamChanged, delivery: Delivery) -> None:
        pass

    broker.consume(first, handle_first, StreamChanged)
    broker.consume(second, handle_second, StreamChanged)
    assert not broker.is_ready()  # connected, but nothing consumes yet
    await broker.start()
    assert broker.is_ready()
    await wait_for(lambda: asyncio.sleep(0, second_existed), what="the first consumer's delivery")
    assert second_existed[0] is True
    await broker.close()


async def test_a_delayed_message_waits_on_its_rung_and_survives_the_consumer_being_gone(backends):
    """`publish_delayed` puts the message on a TTL rung of the queue's ladder; it reaches the queue only when the
    TTL ran out, and waits there for a consumer that was not running meanwhile (a restart)."""
    spec = topology.QueueSpec(f"test.{uuid.uuid4().hex[:8]}", (SnoozeDue,), retry_delays=(1, 2), max_attempts=3)
    publisher = Broker(backends.amqp_url, service="test-publisher")
    await publisher.connect()
    await publisher.declare(spec)  # the queue and its rungs exist; nobody consumes yet
    due = SnoozeDue(account_id="a1", conversation_id="c1", snooze_token="t1", due_at=utcnow() + timedelta(seconds=2))
    published_at = asyncio.get_running_loop().time()
    assert await publisher.publish_delayed(due, spec, 2.5) == 2  # the largest rung that does not overshoot
    assert await _queue_depth(publisher, spec.retry_queue(2)) == 1
    assert await _queue_depth(publisher, spec.name) == 0

    async def arrived() -> bool:
        return await _queue_depth(publisher, spec.name) == 1

    await wait_for(arrived, timeout=30, what="the delayed message in its queue")
    assert asyncio.get_running_loop().time() - published_at >= 1.9  # not before the rung's TTL

    received: list[SnoozeDue] = []

    async def handle(event: SnoozeDue, delivery: Delivery) -> None:
        received.append(event)

    consumer = Broker(backends.amqp_url, service="test-consumer")
    await consumer.connect()
    consumer.consume(spec, handle, SnoozeDue)
    await consumer.start()
    await wait_for(lambda: asyncio.sleep(0, received), what="the late consumer gets it")
    assert received[0].snooze_token == "t1" and received[0].event_id == due.event_id
    await consumer.close()
    await publisher.close()


async def _close_channel_from_the_broker(message) -> None:
    """Make RabbitMQ itself close the channel `message` came on: acking a delivery tag the channel never gave out
    is a channel error (406 PRECONDITION_FAILED), so the broker closes it, as it does to every channel when it
    restarts. Returns once the client saw the close."""
    raw_channel = message.channel
    await raw_channel.basic_ack(delivery_tag=10_000_000)
    await wait_for(lambda: asyncio.sleep(0, raw_channel.is_closed), timeout=10, what="the broker to close the channel")


async def test_retry_path_survives_a_channel_that_closed_under_it_and_no_task_exception_goes_unobserved(backends):
    """During a RabbitMQ restart inbox logged `Task exception was never retrieved ... ChannelInvalidStateError`
    after "could not schedule retry; requeueing": the handler failed, its channel closed meanwhile, and the nack
    of the requeue raised inside a task nobody awaited. Now a closed channel means: leave the delivery to the
    broker, which requeues it; the new channel gets it again, once (no copy on the retry queue as well)."""
    loop = asyncio.get_running_loop()
    unobserved: list[dict] = []
    previous_handler = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: unobserved.append(context))
    broker = Broker(backends.amqp_url, service="test")
    await broker.connect()
    deliveries: list[Delivery] = []

    async def handle(event: StreamChanged, delivery: Delivery) -> None:
        deliveries.append(delivery)
        if len(deliveries) == 1:
            await _close_channel_from_the_broker(current[0])
            raise ValueError("the database went away too")

    current: list = []
    spec = _spec()
    broker.consume(spec, handle, StreamChanged)
    consumer = broker._consumers[0]
    original_on_message = consumer._on_message

    async def remember(message):  # the handler sees the contract only; the test needs the raw delivery
        current[:] = [message]
        await original_on_message(message)

    consumer._on_message = remember
    try:
        await broker.start()
        await broker.publish(_stream_event())
        await wait_for(lambda: asyncio.sleep(0, len(deliveries) >= 2), timeout=30, what="the redelivery")
        await wait_for(lambda: asyncio.sleep(0, not consumer.in_flight), timeout=10, what="handling to finish")
        await asyncio.sleep(0)
        gc.collect()  # an unretrieved task exception is reported when the task is collected
        assert not unobserved, f"unobserved: {[c.get('message') for c in unobserved]}"
        assert deliveries[1].redelivered and deliveries[1].attempt == 1  # the broker's requeue, not a retry copy
        for queue in (spec.name, spec.dead_letter_queue):
            assert await _queue_depth(broker, queue) == 0, queue
        # The retry tiers are shared by every queue, so their depth says nothing of this one: no copy was scheduled.
        assert MESSAGES_CONSUMED.labels(spec.name, "retry")._value.get() == 0
        assert len(deliveries) == 2
    finally:
        loop.set_exception_handler(previous_handler)
        await broker.close()
