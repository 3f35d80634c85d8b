"""Live updates: broker events fanned out to the Server-Sent-Event clients of one gateway process.

Every gateway process reads a replica-local queue bound to the live events (`topology.GATEWAY_LIVE_EVENTS`), so each
replica sees every event once and hands it to the connected clients of that event's account. A client that cannot
keep up (its buffer is full) is disconnected rather than allowed to grow memory; SSE clients reconnect by design,
and get what they missed from the journal (`live_journal`): the hub journals each event before any client sees
it, one event at a time in the queue's order, so a client that subscribes and then reads the journal misses
nothing in between.
"""

import asyncio
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mailstream_common.broker import Delivery
from mailstream_common.contracts import (
    ConversationChanged,
    ConversationTimelineRecorded,
    Event,
    MessageDeliveryChanged,
    MessageStored,
    WebhookSubscriptionDisabled,
)

if TYPE_CHECKING:
    from .live_journal import LiveJournal

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LiveEvent:
    """One SSE event: `event:` name, `id:` (the journal key once journaled) and a JSON `data:` object."""

    name: str
    id: str
    data: dict[str, Any]
    event_id: str = ""  # the broker event's id: what tells a replayed event and its live copy apart

    def encode(self) -> str:
        payload = json.dumps(self.data, separators=(",", ":"), default=str)
        return f"id: {self.id}\nevent: {self.name}\ndata: {payload}\n\n"


_CLOSED = object()  # queued to a client when the hub shuts down or the client overflowed


def to_live_event(event: Event) -> tuple[str, LiveEvent] | None:
    """(account id, what its clients see) for a broker event; None for events clients do not get."""
    if isinstance(event, MessageStored):
        name = "message.received" if event.direction == "inbound" else "message.sent"
        if event.imported:
            name = "message.imported"  # history: clients coalesce these (reload a list once) instead of notifying
        data = {
            "conversation_id": event.conversation_id,
            "message_id": event.message_id,
            "stream_id": event.stream_id,
            "topic_id": event.topic_id,
            "direction": event.direction,
            "is_first_message": event.is_first_message,
            "subject": event.subject,
            "from": event.from_.model_dump() if event.from_ else None,
            "received_at": event.received_at.isoformat(),
            "imported": event.imported,
        }
        if event.thread_reason is not None:
            data["thread_reason"] = event.thread_reason
        return event.account_id, LiveEvent(name, event.event_id, data, event.event_id)
    if isinstance(event, MessageDeliveryChanged):
        data = {
            "conversation_id": event.conversation_id,
            "message_id": event.message_id,
            "status": event.status,
            "detail": event.detail,
        }
        if event.timeline:
            data["timeline"] = [entry.model_dump(mode="json", exclude_none=True) for entry in event.timeline]
        return event.account_id, LiveEvent("message.delivery_changed", event.event_id, data, event.event_id)
    if isinstance(event, ConversationChanged):
        data = {
            "conversation_id": event.conversation_id,
            "status": event.status,
            "tags": event.tags,
            "assignee": event.assignee,
            "priority": event.priority,
            "changed_by": event.changed_by,
        }
        if event.participants is not None:
            data["participants"] = event.participants
        return event.account_id, LiveEvent("conversation.changed", event.event_id, data, event.event_id)
    if isinstance(event, ConversationTimelineRecorded):
        data = {
            "conversation_id": event.conversation_id,
            "entry_id": event.entry_id,
            "kind": event.kind,
            "at": event.at.isoformat(),
            "actor": event.actor,
            "details": event.details,
        }
        return event.account_id, LiveEvent("conversation.timeline", event.event_id, data, event.event_id)
    if isinstance(event, WebhookSubscriptionDisabled):
        data = {
            "subscription_id": event.subscription_id,
            "url": event.url,
            "failing_since": event.failing_since.isoformat(),
            "reason": event.reason,
        }
        return event.account_id, LiveEvent("webhook.subscription_disabled", event.event_id, data, event.event_id)
    return None


class Subscription:
    """One connected client's buffer."""

    def __init__(self, account_id: str, size: int, key_id: str | None = None) -> None:
        self.account_id = account_id
        self.key_id = key_id
        self.queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=size)
        self.closed = False

    async def next(self, timeout: float) -> LiveEvent | None:
        """The next event, or None after `timeout` seconds of silence; raises `EOFError` once closed."""
        if self.closed and self.queue.empty():
            raise EOFError
        try:
            item = await asyncio.wait_for(self.queue.get(), timeout)
        except TimeoutError:
            return None
        if item is _CLOSED:
            self.closed = True
            raise EOFError
        return item

    def offer(self, event: LiveEvent) -> bool:
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            return False
        return True

    def close(self) -> None:
        self.closed = True
        while True:  # make room for the end marker, the client is going away anyway
            try:
                self.queue.put_nowait(_CLOSED)
                return
            except asyncio.QueueFull:
                self.queue.get_nowait()


class LiveHub:
    """Connected clients by account; `handle` is the broker consumer of the replica's live queue."""

    def __init__(
        self, client_queue_size: int = 1000, max_clients_per_account: int = 200, journal: "LiveJournal | None" = None
    ) -> None:
        self.client_queue_size = client_queue_size
        self.max_clients_per_account = max_clients_per_account
        self.journal = journal
        self._clients: dict[str, set[Subscription]] = {}
        self._in_order = asyncio.Lock()  # the broker runs handlers side by side; clients must see queue order
        self.closed = False

    def client_count(self, account_id: str | None = None) -> int:
        if account_id is not None:
            return len(self._clients.get(account_id, ()))
        return sum(len(s) for s in self._clients.values())

    def has_room(self, account_id: str) -> bool:
        """Whether the account may open one more stream here (a soft cap: one account cannot exhaust a replica)."""
        return self.client_count(account_id) < self.max_clients_per_account

    @contextmanager
    def subscribe(self, account_id: str, key_id: str | None = None) -> Iterator[Subscription]:
        subscription = Subscription(account_id, self.client_queue_size, key_id)
        if self.closed:
            subscription.close()
        self._clients.setdefault(account_id, set()).add(subscription)
        try:
            yield subscription
        finally:
            clients = self._clients.get(account_id)
            if clients is not None:
                clients.discard(subscription)
                if not clients:
                    del self._clients[account_id]

    def publish(self, account_id: str, event: LiveEvent) -> int:
        """Hand `event` to every client of the account; returns how many took it."""
        delivered = 0
        for subscription in list(self._clients.get(account_id, ())):
            if subscription.offer(event):
                delivered += 1
            else:
                log.warning("live client too slow; disconnecting it", extra={"account_id": account_id})
                subscription.close()
        return delivered

    async def handle(self, event: Event, delivery: Delivery | None) -> None:
        routed = to_live_event(event)
        if routed is None:
            return
        account_id, live_event = routed
        async with self._in_order:  # FIFO: handlers take the lock in the order the queue delivered them
            if self.journal is not None:
                live_event = await self.journal.record(account_id, live_event)
            self.publish(account_id, live_event)

    def close_key(self, key_id: str) -> int:
        """End the streams opened with a key that was revoked; returns how many."""
        closed = 0
        for clients in self._clients.values():
            for subscription in clients:
                if subscription.key_id == key_id:
                    subscription.close()
                    closed += 1
        return closed

    def close(self) -> None:
        """End every client's stream (shutdown: lets the HTTP server finish its open responses)."""
        self.closed = True
        for clients in self._clients.values():
            for subscription in clients:
                subscription.close()
