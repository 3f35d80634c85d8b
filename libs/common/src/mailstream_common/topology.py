"""Every exchange, queue and routing key, in one place, declared idempotently at start-up.

One durable topic exchange carries every event; its routing key is the event's `event_name`. Each consumer
owns a durable quorum queue bound to the events it needs, plus:

- delayed retry through the shared tiers `mailstream.retry.<N>s`: one quorum queue per delay for the whole system
  (not per work queue), with a message TTL, dead-lettering **at least once** back to the work queue named by the
  message's routing key (through `mailstream.retry.due`, to which every work queue is bound by its own name). A
  message goes to the smallest tier that is at least the wanted delay (`mailstream.retry`, a headers exchange,
  picks the tier by the `retry-tier` header). At least once: a message that expires while its work queue cannot
  take it (the node restarting, the queue's leader not elected yet) stays in the tier until it can; classic TTL
  queues dead-letter at most once and dropped such messages. Quorum queues cost more to create than classic ones,
  so there are only as many as distinct delays (bench/topology_declare.py).
- `<queue>.dead`: where a poison message ends after `max_attempts`, or at once when it can never succeed,
  with headers naming its origin and the error.

Replica-local queues (cache invalidation, live-update fan-out) are exclusive and auto-delete: they exist only while
their process runs and carry nothing that must survive it.
"""

import weakref
from dataclasses import dataclass, field

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange

from .contracts import (
    ApiKeyRevoked,
    CannedResponseChanged,
    ConversationActionsRequested,
    ConversationChanged,
    ConversationTimelineRecorded,
    DataErasurePartDone,
    DataErasureRequested,
    DataExportRequested,
    DeliveryReported,
    DomainChanged,
    Event,
    MailAnalysed,
    MailReceived,
    MessageDeliveryChanged,
    MessageStored,
    ProjectionResyncRequested,
    ReplyRequested,
    ScheduledReplyDue,
    SnoozeDue,
    StreamChanged,
    TopicChanged,
    WebhookAttemptDue,
    WebhookSubscriptionDisabled,
)

EVENTS_EXCHANGE = "mailstream.events"
RETRY_EXCHANGE = "mailstream.retry"  # headers exchange: a retry copy goes to the tier its `retry-tier` names
RETRY_DUE_EXCHANGE = "mailstream.retry.due"  # direct: an expired copy goes back to the queue its routing key names
# Not an `x-` name: a headers exchange ignores those when matching.
HEADER_RETRY_TIER = "retry-tier"

DEFAULT_RETRY_DELAYS: tuple[int, ...] = (1, 5, 30, 120, 600)


def routing_key(event: type[Event] | Event) -> str:
    return event.event_name


def retry_tier_queue(delay_seconds: int) -> str:
    return f"mailstream.retry.{delay_seconds}s"


@dataclass(frozen=True)
class QueueSpec:
    """A consumer's queue: what it is bound to and how failures are retried."""

    name: str
    events: tuple[type[Event], ...]
    retry_delays: tuple[int, ...] = DEFAULT_RETRY_DELAYS
    max_attempts: int = 8
    replica_local: bool = False
    arguments: dict = field(default_factory=dict)

    @property
    def dead_letter_queue(self) -> str:
        return f"{self.name}.dead"

    def retry_queue(self, delay_seconds: int) -> str:
        """The (shared) tier a retry of this queue waits in for `delay_seconds`."""
        return retry_tier_queue(delay_seconds)

    def retry_tier(self, wanted_seconds: float) -> int:
        """The smallest declared delay that is at least `wanted_seconds` (the largest if none is)."""
        for delay in self.retry_delays:
            if delay >= wanted_seconds:
                return delay
        return self.retry_delays[-1]


# The durable work queues, by owner. Replica-local ones are built with `replica_queue()` by their service.
INGEST_ANALYSE = QueueSpec("ingest.analyse", (MailReceived,))
INBOX_STORE = QueueSpec("inbox.store", (MailAnalysed,))
INBOX_DELIVERY = QueueSpec("inbox.delivery", (DeliveryReported,))
INBOX_ACTIONS = QueueSpec("inbox.actions", (ConversationActionsRequested,))
AUTOMATION_EVALUATE = QueueSpec("automation.evaluate", (MessageStored,))
SENDER_REPLIES = QueueSpec(
    "sender.replies", (ReplyRequested,), retry_delays=(5, 30, 120, 600, 1800, 3600), max_attempts=30
)
SENDER_BOUNCES = QueueSpec("sender.bounces", (DeliveryReported,))
# Inbox's wake-up calls (snoozes, scheduled replies): its retry tiers double as the delay ladder (`delays.py`), so a
# message due in a week climbs down from the day tier; a failure is retried through the same tiers.
TIMER_LADDER: tuple[int, ...] = (1, 5, 30, 120, 600, 3600, 6 * 3600, 24 * 3600)
INBOX_TIMERS = QueueSpec("inbox.timers", (SnoozeDue, ScheduledReplyDue), retry_delays=TIMER_LADDER, max_attempts=12)

# Projections of inbox's catalogue (see mailstream_common.projection): one durable queue per consuming service,
# shared by its replicas, so an event published while every replica is down is applied when one comes back.
INBOX_RESYNC = QueueSpec("inbox.resync", (ProjectionResyncRequested,))
INGEST_STREAM_ROUTES = QueueSpec("ingest.stream_routes", (StreamChanged,))
SENDER_STREAM_SETTINGS = QueueSpec("sender.stream_settings", (StreamChanged,))
AUTOMATION_REFERENCES = QueueSpec("automation.references", (TopicChanged, StreamChanged, CannedResponseChanged))
PROJECTION_QUEUES: tuple[QueueSpec, ...] = (INGEST_STREAM_ROUTES, SENDER_STREAM_SETTINGS, AUTOMATION_REFERENCES)

# Data protection (contracts/data_protection.py): every service does its part of an erasure or export from a durable
# queue of its own and reports to inbox, which tracks the request. The parts are re-runnable, so the ordinary retry
# policy applies.
DATA_REQUEST_EVENTS = (DataErasureRequested, DataExportRequested)
INGEST_DATA_REQUESTS = QueueSpec("ingest.data_requests", DATA_REQUEST_EVENTS)
INBOX_DATA_REQUESTS = QueueSpec("inbox.data_requests", DATA_REQUEST_EVENTS)
AUTOMATION_DATA_REQUESTS = QueueSpec("automation.data_requests", DATA_REQUEST_EVENTS)
SENDER_DATA_REQUESTS = QueueSpec("sender.data_requests", DATA_REQUEST_EVENTS)
DOMAINS_DATA_REQUESTS = QueueSpec("domains.data_requests", DATA_REQUEST_EVENTS)
INBOX_DATA_REQUEST_PARTS = QueueSpec("inbox.data_request_parts", (DataErasurePartDone,))
DATA_REQUEST_QUEUES: dict[str, QueueSpec] = {
    "ingest": INGEST_DATA_REQUESTS,
    "inbox": INBOX_DATA_REQUESTS,
    "automation": AUTOMATION_DATA_REQUESTS,
    "sender": SENDER_DATA_REQUESTS,
    "domains": DOMAINS_DATA_REQUESTS,
}
DATA_PROTECTION_QUEUES: tuple[QueueSpec, ...] = (*DATA_REQUEST_QUEUES.values(), INBOX_DATA_REQUEST_PARTS)

WORK_QUEUES: tuple[QueueSpec, ...] = (
    INGEST_ANALYSE,
    INBOX_STORE,
    INBOX_DELIVERY,
    INBOX_ACTIONS,
    AUTOMATION_EVALUATE,
    SENDER_REPLIES,
    SENDER_BOUNCES,
    INBOX_TIMERS,
    INBOX_RESYNC,
    *PROJECTION_QUEUES,
    *DATA_PROTECTION_QUEUES,
)

# Outgoing webhooks (mailstream_inbox.webhooks): one durable queue of the facts subscribers may receive, shared by
# every dispatcher replica, and the attempts queue whose TTL tiers are the delay ladder of the retry schedule.
WEBHOOKS_EVENTS = QueueSpec(
    "webhooks.events",
    (
        MessageStored,
        ConversationChanged,
        ConversationTimelineRecorded,
        MessageDeliveryChanged,
        StreamChanged,
        DomainChanged,
    ),
)
WEBHOOKS_ATTEMPTS = QueueSpec("webhooks.attempts", (WebhookAttemptDue,), retry_delays=TIMER_LADDER, max_attempts=12)
WORK_QUEUES = (*WORK_QUEUES, WEBHOOKS_EVENTS, WEBHOOKS_ATTEMPTS)


def replica_queue(service: str, replica_id: str, events: tuple[type[Event], ...]) -> QueueSpec:
    """A queue that only this process reads and that vanishes with it (caches, live updates)."""
    return QueueSpec(f"{service}.replica.{replica_id}", events, retry_delays=(1,), max_attempts=1, replica_local=True)


INGEST_STREAM_EVENTS = (StreamChanged,)
SENDER_DOMAIN_EVENTS = (DomainChanged,)
SENDER_REPLICA_EVENTS = (DomainChanged, StreamChanged)  # signing-key and stream caches: one replica queue
GATEWAY_LIVE_EVENTS = (MessageStored, ConversationChanged, MessageDeliveryChanged, ConversationTimelineRecorded)
GATEWAY_LIVE_EVENTS = (*GATEWAY_LIVE_EVENTS, WebhookSubscriptionDisabled)
GATEWAY_KEY_EVENTS = (ApiKeyRevoked,)  # key-cache invalidation, on the same replica queue as the live events
GATEWAY_REPLICA_EVENTS = GATEWAY_LIVE_EVENTS + GATEWAY_KEY_EVENTS


async def declare_exchange(channel: AbstractChannel) -> AbstractExchange:
    return await channel.declare_exchange(EVENTS_EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True)


# The tiers each channel declared already: declaring the same queue again is only a check, but one spec after another
# would repeat it for every delay they share.
_tiers_declared: "weakref.WeakKeyDictionary[AbstractChannel, set[int]]" = weakref.WeakKeyDictionary()


async def declare_retry_tier(channel: AbstractChannel, delay_seconds: int) -> None:
    """One shared delay tier and its binding (idempotent; once per channel)."""
    declared = _tiers_declared.setdefault(channel, set())
    if delay_seconds in declared:
        return
    exchange = await channel.declare_exchange(RETRY_EXCHANGE, aio_pika.ExchangeType.HEADERS, durable=True)
    tier = await channel.declare_queue(
        retry_tier_queue(delay_seconds),
        durable=True,
        arguments={
            "x-queue-type": "quorum",
            "x-message-ttl": delay_seconds * 1000,
            "x-dead-letter-exchange": RETRY_DUE_EXCHANGE,  # no dead-letter routing key: the message's own names
            "x-dead-letter-strategy": "at-least-once",  # kept until the work queue confirmed it
            "x-overflow": "reject-publish",  # required by at-least-once dead-lettering
        },
    )
    await tier.bind(exchange, arguments={"x-match": "all", HEADER_RETRY_TIER: str(delay_seconds)})
    declared.add(delay_seconds)


async def declare_queue(channel: AbstractChannel, spec: QueueSpec) -> aio_pika.abc.AbstractQueue:
    """Declare a consumer's queue with its retry tiers and dead-letter queue, and bind it. Idempotent."""
    exchange = await declare_exchange(channel)
    if spec.replica_local:
        queue = await channel.declare_queue(spec.name, exclusive=True, auto_delete=True, arguments=spec.arguments)
    else:
        queue = await channel.declare_queue(
            spec.name, durable=True, arguments={"x-queue-type": "quorum", **spec.arguments}
        )
        await channel.declare_queue(spec.dead_letter_queue, durable=True, arguments={"x-queue-type": "quorum"})
        due = await channel.declare_exchange(RETRY_DUE_EXCHANGE, aio_pika.ExchangeType.DIRECT, durable=True)
        await queue.bind(due, routing_key=spec.name)
        for delay in spec.retry_delays:
            await declare_retry_tier(channel, delay)
    for event in spec.events:
        await queue.bind(exchange, routing_key=routing_key(event))
    return queue
