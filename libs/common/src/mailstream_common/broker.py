"""RabbitMQ: a publisher that waits for the broker's confirm, and a consumer runner with an explicit ack policy.

Ack policy of every consumer run here:
- the handler returns: ack.
- the handler raises `Reject`, or the body is not a valid contract of a known version: dead-letter at once
  (it can never succeed; retrying would only delay the alarm).
- the handler raises `Retry`, or anything else: republish to the delayed retry queue (the delay `Retry` asks for,
  else exponential backoff) with the attempt count, then ack; after `max_attempts` dead-letter instead.
- shutdown: stop taking work, let in-flight handlers finish for a grace period, then close the channel so that the
  broker requeues whatever was not acked.
- the channel the message came on closed under it (the broker restarted, the connection dropped): nothing is acked,
  nacked or republished; the broker requeues every unacked delivery of a closed channel by itself, and the robust
  connection's new channel receives it again. No handler task ever ends with an exception nobody looks at.

Handlers must therefore be idempotent: a message may be delivered again after a crash between the work and the ack.
"""

import asyncio
import logging
import random
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import aio_pika
import aiormq
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue, AbstractRobustConnection
from pydantic import ValidationError

from . import delays, logs, topology, tracing
from .contracts import Event
from .metrics import HANDLE_SECONDS, MESSAGES_CONSUMED, MESSAGES_PUBLISHED, PUBLISH_CONFIRM_SECONDS

log = logging.getLogger(__name__)

E = TypeVar("E", bound=Event)

HEADER_EVENT = "x-event"
HEADER_SCHEMA_VERSION = "x-schema-version"
HEADER_ATTEMPT = "x-attempt"
HEADER_FIRST_SEEN = "x-first-seen"
HEADER_ORIGIN_QUEUE = "x-origin-queue"
HEADER_ERROR = "x-error"
# Where the message first came from (kept through retries, so a dead letter still names it), when it died, and how
# often an operator requeued it (the dead-letter keeper tells a new death from a redelivered copy by it).
HEADER_ORIGIN_EXCHANGE = "x-origin-exchange"
HEADER_ORIGIN_ROUTING_KEY = "x-origin-routing-key"
HEADER_DEAD_LETTERED_AT = "x-dead-lettered-at"
HEADER_REQUEUES = "x-requeues"


class PublishError(RuntimeError):
    """The broker did not confirm the message (nack, unroutable, timeout or connection lost)."""


class Retry(Exception):
    """Try this message again later; `delay` overrides the backoff (e.g. a server's stated retry delay)."""

    def __init__(self, reason: str, delay: float | None = None) -> None:
        super().__init__(reason)
        self.delay = delay


class Reject(Exception):
    """This message can never succeed: dead-letter it now with the reason."""


@dataclass(frozen=True)
class Delivery:
    """What a handler may know about the delivery besides the contract itself."""

    attempt: int
    first_seen: float
    redelivered: bool
    queue: str


Handler = Callable[[E, Delivery], Awaitable[None]]


def backoff_seconds(attempt: int, base: float = 1.0, cap: float = 3600.0) -> float:
    """Exponential backoff with full jitter: attempt 1 waits up to `base`, then doubling up to `cap`."""
    return random.uniform(base / 2, min(cap, base * 2 ** (attempt - 1)))  # noqa: S311 - jitter, not crypto


class Broker:
    """One robust connection per process; one confirming channel for publishing, one channel per consumer."""

    def __init__(self, url: str, *, service: str, confirm_timeout: float = 10.0) -> None:
        self._url = url
        self._service = service
        self._confirm_timeout = confirm_timeout
        self._connection: AbstractRobustConnection | None = None
        self._publish_channel: AbstractChannel | None = None
        self._exchange: aio_pika.abc.AbstractExchange | None = None
        self._consumers: list[_Consumer[Any]] = []
        self._started = False

    async def connect(self, *, timeout: float = 30.0) -> None:
        self._connection = await aio_pika.connect_robust(
            self._url, timeout=timeout, client_properties={"connection_name": self._service}
        )
        self._publish_channel = await self._connection.channel(publisher_confirms=True)
        self._exchange = await topology.declare_exchange(self._publish_channel)

    @property
    def connection(self) -> AbstractRobustConnection:
        if self._connection is None:
            raise RuntimeError("Broker.connect() was not awaited")
        return self._connection

    async def declare(self, *specs: topology.QueueSpec) -> None:
        """Declare queues this process publishes to directly or relies on existing (idempotent)."""
        channel = await self.connection.channel()
        try:
            for spec in specs:
                await topology.declare_queue(channel, spec)
        finally:
            await channel.close()

    async def queue_depth(self, queue: str) -> int:
        """Messages ready in `queue` now (a passive declare: it never creates the queue, and fails if it is absent).

        For a one-off read only: it opens and closes a channel, and with aio-pika 10.2 / aiormq 7.2 every closed
        channel leaves ~3.5 KB on the connection for good. A reader that polls keeps one channel (ingest's
        `backlog.QueueDepths`); tests/ingest/test_backlog.py keeps this one as the leak's strict xfail."""
        channel = await self.connection.channel()
        try:
            declared = await channel.declare_queue(queue, passive=True)
            return declared.declaration_result.message_count or 0
        finally:
            if not channel.is_closed:
                await channel.close()

    def is_ready(self) -> bool:
        """Connected, and (when this process consumes) every consumer is taking work."""
        return (
            (self._started or not self._consumers)
            and self._connection is not None
            and not self._connection.is_closed
            and self._publish_channel is not None
            and not self._publish_channel.is_closed
        )

    async def publish(self, event: Event, *, correlation_id: str | None = None, timeout: float | None = None) -> None:
        """Publish persistently and return only once the broker confirmed it; raise `PublishError` otherwise."""
        if self._exchange is None:
            raise PublishError("not connected")
        cid = correlation_id or event.correlation_id or logs.correlation_id.get() or logs.new_correlation_id()
        if event.correlation_id != cid:
            event = event.model_copy(update={"correlation_id": cid})
        headers: dict[str, Any] = {HEADER_EVENT: event.event_name, HEADER_SCHEMA_VERSION: event.schema_version}
        routing_key = topology.routing_key(event)
        with tracing.publishing(event, self._exchange.name, routing_key, headers):
            await self._publish_confirmed(event, cid, headers, routing_key, timeout)

    async def _publish_confirmed(
        self, event: Event, cid: str, headers: dict[str, Any], routing_key: str, timeout: float | None
    ) -> None:
        assert self._exchange is not None
        message = aio_pika.Message(
            body=event.model_dump_json(by_alias=True).encode(),
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=event.event_id,
            correlation_id=cid,
            app_id=self._service,
            headers=headers,
        )
        started = time.perf_counter()
        try:
            confirmation = await asyncio.wait_for(
                self._exchange.publish(message, routing_key=routing_key, mandatory=True),
                timeout or self._confirm_timeout,
            )
        except Exception as exc:  # aiormq raises several types for nack, return, closed channel and timeout
            MESSAGES_PUBLISHED.labels(event.event_name, "failed").inc()
            raise PublishError(f"{event.event_name} not confirmed: {exc!r}") from exc
        if not isinstance(confirmation, aiormq.spec.Basic.Ack):
            MESSAGES_PUBLISHED.labels(event.event_name, "failed").inc()
            raise PublishError(f"{event.event_name} not confirmed: {confirmation!r}")
        PUBLISH_CONFIRM_SECONDS.labels(event.event_name).observe(time.perf_counter() - started)
        MESSAGES_PUBLISHED.labels(event.event_name, "confirmed").inc()

    async def publish_delayed(
        self, event: Event, spec: topology.QueueSpec, delay_seconds: float, *, timeout: float | None = None
    ) -> int:
        """Put `event` on the rung of `spec`'s delay ladder for `delay_seconds` (`delays.ladder_tier`); it reaches
        `spec`'s queue when that tier's TTL runs out (the shared tiers, `topology.declare_retry_tier`). Confirmed like
        `publish`; returns the tier used."""
        if self._publish_channel is None:
            raise PublishError("not connected")
        tier = delays.ladder_tier(delay_seconds, spec.retry_delays)
        headers: dict[str, Any] = {
            HEADER_EVENT: event.event_name,
            HEADER_SCHEMA_VERSION: event.schema_version,
            topology.HEADER_RETRY_TIER: str(tier),
        }
        with tracing.publishing(event, topology.RETRY_EXCHANGE, spec.name, headers):
            await self._publish_delayed_confirmed(event, spec, tier, headers, timeout)
        return tier

    async def _publish_delayed_confirmed(
        self, event: Event, spec: topology.QueueSpec, tier: int, headers: dict[str, Any], timeout: float | None
    ) -> None:
        assert self._publish_channel is not None
        cid = event.correlation_id or logs.correlation_id.get() or logs.new_correlation_id()
        message = aio_pika.Message(
            body=event.model_copy(update={"correlation_id": cid}).model_dump_json(by_alias=True).encode(),
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=event.event_id,
            correlation_id=cid,
            app_id=self._service,
            headers=headers,
        )
        retry_exchange = await self._publish_channel.get_exchange(topology.RETRY_EXCHANGE, ensure=False)
        try:
            confirmation = await asyncio.wait_for(
                retry_exchange.publish(message, routing_key=spec.name, mandatory=True),
                timeout or self._confirm_timeout,
            )
        except Exception as exc:
            MESSAGES_PUBLISHED.labels(event.event_name, "failed").inc()
            raise PublishError(f"{event.event_name} (delayed) not confirmed: {exc!r}") from exc
        if not isinstance(confirmation, aiormq.spec.Basic.Ack):
            MESSAGES_PUBLISHED.labels(event.event_name, "failed").inc()
            raise PublishError(f"{event.event_name} (delayed) not confirmed: {confirmation!r}")
        MESSAGES_PUBLISHED.labels(event.event_name, "confirmed").inc()

    async def publish_to_queue(
        self,
        queue_name: str,
        body: bytes,
        *,
        headers: dict[str, Any],
        message_id: str | None,
        correlation_id: str | None,
        content_type: str | None = "application/json",
        timeout: float | None = None,
    ) -> None:
        """Put a message, as it is, straight on one named queue (not through the exchange, so no other queue bound
        to its event gets a copy), persistent and confirmed like `publish`; raise `PublishError` otherwise."""
        if self._publish_channel is None:
            raise PublishError("not connected")
        message = aio_pika.Message(
            body=body,
            content_type=content_type,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=message_id,
            correlation_id=correlation_id,
            app_id=self._service,
            headers=headers,
        )
        try:
            confirmation = await asyncio.wait_for(
                self._publish_channel.default_exchange.publish(message, routing_key=queue_name, mandatory=True),
                timeout or self._confirm_timeout,
            )
        except Exception as exc:
            raise PublishError(f"message to queue {queue_name} not confirmed: {exc!r}") from exc
        if not isinstance(confirmation, aiormq.spec.Basic.Ack):
            raise PublishError(f"message to queue {queue_name} not confirmed: {confirmation!r}")

    def consume(
        self,
        spec: topology.QueueSpec,
        handler: Handler[E],
        models: type[E] | tuple[type[E], ...],
        *,
        prefetch: int = 32,
    ) -> None:
        """Register a consumer; it starts with `start()`. `models` maps the x-event header to a contract."""
        if not isinstance(models, tuple):
            models = (models,)
        self._consumers.append(_Consumer(self, spec, handler, {m.event_name: m for m in models}, prefetch))

    async def start(self) -> None:
        # Every queue is declared and bound before any consumer takes work: otherwise the first command could be
        # handled (and observed) while an event this process also listens to is still unroutable.
        for consumer in self._consumers:
            await consumer.open()
        for consumer in self._consumers:
            await consumer.begin()
        self._started = True

    async def close(self, grace: float = 20.0) -> None:
        """Stop every consumer (finishing or requeueing in-flight work), then close the connection."""
        await asyncio.gather(*(c.stop(grace) for c in self._consumers), return_exceptions=True)
        if self._connection is not None and not self._connection.is_closed:
            await self._connection.close()

    async def _republish_raw(
        self,
        channel: AbstractChannel,
        routing_key: str,
        message: AbstractIncomingMessage,
        headers: dict[str, Any],
        *,
        exchange: str = "",
    ) -> None:
        """Put a copy of `message` on a named queue (the default exchange: a dead-letter queue) or through a named
        exchange (the retry tiers, with the work queue's name as routing key), and wait for the confirm.

        Every header survives, the trace context included; with tracing on, the copy's `traceparent` names the
        attempt that failed, so the next attempt (or the dead letter) hangs under it in the same trace."""
        headers = {**(message.headers or {}), **headers}
        tracing.inject(headers)
        copy = aio_pika.Message(
            body=message.body,
            content_type=message.content_type,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=message.message_id,
            correlation_id=message.correlation_id,
            app_id=message.app_id,
            headers=headers,
        )
        target = channel.default_exchange if not exchange else await channel.get_exchange(exchange, ensure=False)
        confirmation = await asyncio.wait_for(
            target.publish(copy, routing_key=routing_key, mandatory=True), self._confirm_timeout
        )
        if not isinstance(confirmation, aiormq.spec.Basic.Ack):
            raise PublishError(f"republish to {exchange or 'queue'} {routing_key} not confirmed: {confirmation!r}")


class _Consumer(Generic[E]):
    def __init__(
        self,
        broker: Broker,
        spec: topology.QueueSpec,
        handler: Handler[E],
        models: dict[str, type[E]],
        prefetch: int,
    ) -> None:
        self.broker = broker
        self.spec = spec
        self.handler = handler
        self.models = models
        self.prefetch = prefetch
        self.channel: AbstractChannel | None = None
        self.queue: AbstractQueue | None = None
        self.tag: str | None = None
        self.stopping = False
        self.in_flight: set[asyncio.Task[None]] = set()

    async def open(self) -> None:
        self.channel = await self.broker.connection.channel(publisher_confirms=True)
        await self.channel.set_qos(prefetch_count=self.prefetch)
        self.queue = await topology.declare_queue(self.channel, self.spec)

    async def begin(self) -> None:
        assert self.queue is not None, "open() first"
        self.tag = await self.queue.consume(self._on_message)

    async def stop(self, grace: float) -> None:
        self.stopping = True
        if self.queue is not None and self.tag is not None and self.channel and not self.channel.is_closed:
            try:
                await self.queue.cancel(self.tag)
            except Exception:  # the channel may already be gone; the broker then requeues by itself
                log.warning("consumer cancel failed", extra={"queue": self.spec.name})
        if self.in_flight:
            _, pending = await asyncio.wait(self.in_flight, timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                log.warning("in-flight work requeued at shutdown", extra={"count": len(pending)})
        if self.channel is not None and not self.channel.is_closed:
            await self.channel.close()  # unacked deliveries go back to the queue

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        if self.stopping:
            if await _settle(message, "nack", self.spec.name):
                MESSAGES_CONSUMED.labels(self.spec.name, "requeued").inc()
            return
        task = asyncio.create_task(self._handle(message))
        self.in_flight.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        """Observe every handler task's end: an exception that escaped `_handle` is logged here, not left to the
        event loop's "Task exception was never retrieved" at garbage collection."""
        self.in_flight.discard(task)
        if task.cancelled():
            return
        if (exc := task.exception()) is not None:
            log.error(
                "message handling failed; the broker redelivers it",
                extra={"queue": self.spec.name, "error": _describe(exc)},
                exc_info=exc,
            )

    async def _handle(self, message: AbstractIncomingMessage) -> None:
        headers = message.headers or {}
        attempt = int(headers.get(HEADER_ATTEMPT, 1))
        first_seen = float(headers.get(HEADER_FIRST_SEEN, time.time()))
        token = logs.correlation_id.set(message.correlation_id)
        started = time.perf_counter()
        with tracing.consuming(self.spec.name, headers, attempt=attempt, redelivered=message.redelivered) as span:
            try:
                event = self._decode(message)
                tracing.tag_event(span, event)
                await self.handler(event, Delivery(attempt, first_seen, message.redelivered, self.spec.name))
            except asyncio.CancelledError:
                # Shutdown ran out of grace: leave it unacked so the broker requeues it on channel close.
                MESSAGES_CONSUMED.labels(self.spec.name, "requeued").inc()
                tracing.mark_outcome(span, "requeued")
                raise
            except (Reject, ValidationError, _UnknownContract) as exc:
                tracing.mark_error(span, exc)
                await self._dead_letter(message, exc)
            except Exception as exc:
                tracing.mark_error(span, exc)
                await self._retry_or_dead_letter(message, exc, attempt, first_seen)
            else:
                tracing.mark_outcome(span, "ack")
                if await _settle(message, "ack", self.spec.name):
                    MESSAGES_CONSUMED.labels(self.spec.name, "ack").inc()
            finally:
                HANDLE_SECONDS.labels(self.spec.name).observe(time.perf_counter() - started)
                logs.correlation_id.reset(token)

    def _decode(self, message: AbstractIncomingMessage) -> E:
        headers = message.headers or {}
        name = str(headers.get(HEADER_EVENT, ""))
        model = self.models.get(name)
        if model is None:
            raise _UnknownContract(f"queue {self.spec.name} does not handle event {name!r}")
        version = int(headers.get(HEADER_SCHEMA_VERSION, 1))
        if version != model.schema_version:
            raise _UnknownContract(f"{name} schema version {version} (this consumer knows {model.schema_version})")
        return model.model_validate_json(message.body)

    async def _retry_or_dead_letter(
        self, message: AbstractIncomingMessage, exc: Exception, attempt: int, first_seen: float
    ) -> None:
        if self.spec.replica_local or attempt >= self.spec.max_attempts:
            await self._dead_letter(message, exc)
            return
        wanted = exc.delay if isinstance(exc, Retry) and exc.delay is not None else backoff_seconds(attempt)
        tier = self.spec.retry_tier(wanted)
        tracing.note_outcome("retry", retry_delay_s=tier)
        log.warning(
            "message will be retried",
            extra={"queue": self.spec.name, "attempt": attempt, "delay_s": tier, "error": _describe(exc)},
        )
        assert self.channel is not None
        if not _channel_open(message):
            # A copy on the retry queue (through the robust channel's replacement) plus the broker's own requeue of
            # this delivery would be two deliveries of one message: leave it to the requeue alone.
            _left_to_broker(self.spec.name, "retry")
            return
        try:
            await self.broker._republish_raw(
                self.channel,
                self.spec.name,
                message,
                {
                    HEADER_ATTEMPT: attempt + 1,
                    HEADER_FIRST_SEEN: first_seen,
                    HEADER_ERROR: _describe(exc),
                    topology.HEADER_RETRY_TIER: str(tier),
                    **_origin_headers(message),
                },
                exchange=topology.RETRY_EXCHANGE,
            )
        except Exception as republish_error:
            log.warning(
                "could not schedule retry; requeueing",
                extra={"queue": self.spec.name, "error": _describe(republish_error)},
            )
            if await _settle(message, "nack", self.spec.name):
                MESSAGES_CONSUMED.labels(self.spec.name, "requeued").inc()
            return
        if await _settle(message, "ack", self.spec.name):
            MESSAGES_CONSUMED.labels(self.spec.name, "retry").inc()

    async def _dead_letter(self, message: AbstractIncomingMessage, exc: Exception) -> None:
        log.error("message dead-lettered", extra={"queue": self.spec.name, "error": _describe(exc)})
        tracing.note_outcome("dead-lettered")
        if self.spec.replica_local:
            # A cache refresh that fails is dropped; the cache falls back to lookups.
            if await _settle(message, "ack", self.spec.name):
                MESSAGES_CONSUMED.labels(self.spec.name, "dropped").inc()
            return
        assert self.channel is not None
        if not _channel_open(message):
            _left_to_broker(self.spec.name, "dead-letter")
            return
        try:
            await self.broker._republish_raw(
                self.channel,
                self.spec.dead_letter_queue,
                message,
                {
                    HEADER_ORIGIN_QUEUE: self.spec.name,
                    HEADER_ERROR: _describe(exc),
                    HEADER_DEAD_LETTERED_AT: time.time(),
                    **_origin_headers(message),
                },
            )
        except Exception as republish_error:
            log.warning(
                "could not dead-letter; requeueing",
                extra={"queue": self.spec.name, "error": _describe(republish_error)},
            )
            await _settle(message, "nack", self.spec.name)
            return
        if await _settle(message, "ack", self.spec.name):
            MESSAGES_CONSUMED.labels(self.spec.name, "dead").inc()


class _UnknownContract(Exception):
    pass


def _origin_headers(message: AbstractIncomingMessage) -> dict[str, Any]:
    """The exchange and routing key the message was first published with; a retried copy arrives from its retry
    tier through the default exchange, so the first failure's record is kept."""
    headers = message.headers or {}
    if HEADER_ORIGIN_ROUTING_KEY in headers:
        return {}
    return {HEADER_ORIGIN_EXCHANGE: message.exchange or "", HEADER_ORIGIN_ROUTING_KEY: message.routing_key or ""}


def _channel_open(message: AbstractIncomingMessage) -> bool:
    """Whether the channel this delivery came on is still open (its delivery tag means nothing on another one)."""
    try:
        return not message.channel.is_closed
    except aio_pika.exceptions.ChannelInvalidStateError:
        return False


def _left_to_broker(queue: str, step: str) -> None:
    log.warning("channel closed under the message; the broker redelivers it", extra={"queue": queue, "step": step})
    MESSAGES_CONSUMED.labels(queue, "requeued").inc()


async def _settle(message: AbstractIncomingMessage, how: str, queue: str) -> bool:
    """Ack, or nack with requeue; False where the channel closed first (the broker then requeues the delivery)."""
    try:
        if how == "ack":
            await message.ack()
        else:
            await message.nack(requeue=True)
    except (aio_pika.exceptions.ChannelInvalidStateError, aiormq.exceptions.AMQPError, ConnectionError) as exc:
        log.warning(
            "channel closed under the message; the broker redelivers it",
            extra={"queue": queue, "step": how, "error": _describe(exc)},
        )
        MESSAGES_CONSUMED.labels(queue, "requeued").inc()
        return False
    return True


def _describe(exc: BaseException) -> str:
    """One line for headers and logs: the type, the message, and where it was raised."""
    frame = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    where = f" at {frame[0].filename.rsplit('/', 1)[-1]}:{frame[0].lineno}" if frame else ""
    return f"{type(exc).__name__}: {exc}"[:500] + where
