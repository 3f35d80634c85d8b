"""What subscribers receive: the broker's facts as webhook events (the same facts the live stream carries), and
the Standard Webhooks payload around them.

Pure: a broker event in, zero or more `WebhookEvent`s out. Each has a `fact_key` that names the fact, not the
publication, so a fact published twice (a redelivery, an outbox's second publish) is still one delivery per
subscription. The body is `{"type", "timestamp", "data"}` as the spec recommends; `data.account_id` is always set.
"""

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from mailstream_common.contracts import (
    ConversationChanged,
    ConversationTimelineRecorded,
    DomainChanged,
    Event,
    MessageDeliveryChanged,
    MessageStored,
    StreamChanged,
)

CONVERSATION_CREATED = "conversation.created"
CONVERSATION_UPDATED = "conversation.updated"
CONVERSATION_MERGED = "conversation.merged"
MESSAGE_RECEIVED = "message.received"
MESSAGE_SENT = "message.sent"
MESSAGE_DELIVERY_CHANGED = "message.delivery_changed"
STREAM_STATUS_CHANGED = "stream.status_changed"
DOMAIN_VERIFICATION_CHANGED = "domain.verification_changed"

#: Every event type a subscription may name, with what it means (the API's documentation reads this).
EVENT_TYPES: dict[str, str] = {
    CONVERSATION_CREATED: "A customer's first message opened a conversation",
    CONVERSATION_UPDATED: "A conversation's status, tags, assignee, priority or participants changed",
    CONVERSATION_MERGED: "A conversation was merged into another",
    MESSAGE_RECEIVED: "An inbound message was stored in a conversation",
    MESSAGE_SENT: "An agent's or automation's reply was stored and queued for sending",
    MESSAGE_DELIVERY_CHANGED: "An outbound message's delivery status changed (queued, sent, failed)",
    STREAM_STATUS_CHANGED: "A stream's status changed (awaiting_mail, receiving, deleted)",
    DOMAIN_VERIFICATION_CHANGED: "A sending domain's verification status changed",
}


@dataclass(frozen=True)
class WebhookEvent:
    type: str
    fact_key: str
    account_id: str
    occurred_at: datetime
    data: dict[str, Any] = field(default_factory=dict)

    def body(self) -> bytes:
        """The JSON body, byte for byte what is signed and sent (compact, keys in a stable order)."""
        payload = {"type": self.type, "timestamp": self.occurred_at.isoformat(), "data": self.data}
        return json.dumps(payload, separators=(",", ":"), sort_keys=True, default=str).encode()


def _address(value: Any) -> dict[str, str] | None:
    return value.model_dump() if value is not None else None


def from_event(event: Event) -> list[WebhookEvent]:
    """The webhook events of one broker event (StreamChanged: see `stream_status_event`)."""
    if isinstance(event, MessageStored):
        return _message_stored(event)
    if isinstance(event, ConversationChanged):
        data = {
            "account_id": event.account_id,
            "conversation_id": event.conversation_id,
            "status": event.status,
            "tags": event.tags,
            "assignee": event.assignee,
            "priority": event.priority,
            "changed_by": event.changed_by,
        }
        if event.participants is not None:
            data["participants"] = event.participants
        return [
            WebhookEvent(CONVERSATION_UPDATED, f"event:{event.event_id}", event.account_id, event.occurred_at, data)
        ]
    if isinstance(event, ConversationTimelineRecorded):
        if event.kind != "merged":
            return []
        data = {
            "account_id": event.account_id,
            "conversation_id": event.conversation_id,
            "merged_at": event.at.isoformat(),
            "actor": event.actor,
            "details": event.details,
        }
        return [WebhookEvent(CONVERSATION_MERGED, f"timeline:{event.entry_id}", event.account_id, event.at, data)]
    if isinstance(event, MessageDeliveryChanged):
        data = {
            "account_id": event.account_id,
            "conversation_id": event.conversation_id,
            "message_id": event.message_id,
            "status": event.status,
            "detail": event.detail,
        }
        key = f"delivery:{event.message_id}:{event.status}:{event.event_id}"
        return [WebhookEvent(MESSAGE_DELIVERY_CHANGED, key, event.account_id, event.occurred_at, data)]
    if isinstance(event, DomainChanged):
        if event.change != "status_changed":
            return []
        data = {
            "account_id": event.account_id,
            "domain_id": event.domain_id,
            "name": event.name,
            "status": event.status,
        }
        key = f"event:{event.event_id}"
        return [WebhookEvent(DOMAIN_VERIFICATION_CHANGED, key, event.account_id, event.occurred_at, data)]
    return []


def _message_stored(event: MessageStored) -> list[WebhookEvent]:
    if event.imported:
        return []  # history brought in by an import is not news to anyone's CRM
    message = {
        "account_id": event.account_id,
        "conversation_id": event.conversation_id,
        "message_id": event.message_id,
        "stream_id": event.stream_id,
        "topic_id": event.topic_id,
        "direction": event.direction,
        "subject": event.subject,
        "from": _address(event.from_),
        "to": [a.model_dump() for a in event.to],
        "cc": [a.model_dump() for a in event.cc],
        "text": event.text,
        "has_attachment": event.has_attachment,
        "received_at": event.received_at.isoformat(),
    }
    if event.thread_reason is not None:
        message["thread_reason"] = event.thread_reason
    kind = MESSAGE_RECEIVED if event.direction == "inbound" else MESSAGE_SENT
    events = [WebhookEvent(kind, f"message:{event.message_id}", event.account_id, event.occurred_at, message)]
    if event.is_first_message and event.direction == "inbound":
        conversation = {
            "account_id": event.account_id,
            "conversation_id": event.conversation_id,
            "stream_id": event.stream_id,
            "topic_id": event.topic_id,
            "subject": event.subject,
            "customer": _address(event.from_),
            "first_message_id": event.message_id,
        }
        key = f"conversation:{event.conversation_id}"
        events.insert(0, WebhookEvent(CONVERSATION_CREATED, key, event.account_id, event.occurred_at, conversation))
    return events


def stream_status(event: StreamChanged) -> str:
    return "deleted" if event.deleted else event.status


def stream_status_event(event: StreamChanged, previous_status: str | None) -> WebhookEvent | None:
    """`stream.status_changed` if the stream's status differs from the last one seen (None: never seen, which
    counts as a change only for a creation; a snapshot of an unknown stream is not news)."""
    status = stream_status(event)
    if previous_status is None and event.change != "created":
        return None
    if previous_status == status:
        return None
    data = {
        "account_id": event.account_id,
        "stream_id": event.stream_id,
        "topic_id": event.topic_id,
        "address": event.address,
        "status": status,
        "previous_status": previous_status,
    }
    key = f"stream:{event.stream_id}:{event.version}"
    return WebhookEvent(STREAM_STATUS_CHANGED, key, event.account_id, event.occurred_at, data)


#: One example per event type, for the API documentation and docs/webhooks.md (kept honest by a unit test that
#: builds each from a real broker event).
EXAMPLES: dict[str, dict[str, Any]] = {
    CONVERSATION_CREATED: {
        "type": CONVERSATION_CREATED,
        "timestamp": "2026-12-05T09:30:00+00:00",
        "data": {
            "account_id": "acc_3f1c2b7a",
            "conversation_id": "c_9a8b7c6d",
            "stream_id": "s_1a2b3c4d",
            "topic_id": "t_5e6f7a8b",
            "subject": "Where is my order?",
            "customer": {"name": "Ada Customer", "address": "ada@example.com"},
            "first_message_id": "m_0f1e2d3c",
        },
    },
    CONVERSATION_UPDATED: {
        "type": CONVERSATION_UPDATED,
        "timestamp": "2026-12-05T09:31:00+00:00",
        "data": {
            "account_id": "acc_3f1c2b7a",
            "conversation_id": "c_9a8b7c6d",
            "status": "pending",
            "tags": ["shipping"],
            "assignee": "agent-7",
            "priority": "high",
            "changed_by": "agent:k_42",
        },
    },
    CONVERSATION_MERGED: {
        "type": CONVERSATION_MERGED,
        "timestamp": "2026-12-05T09:32:00+00:00",
        "data": {
            "account_id": "acc_3f1c2b7a",
            "conversation_id": "c_9a8b7c6d",
            "merged_at": "2026-12-05T09:32:00+00:00",
            "actor": "agent:k_42",
            "details": {"into": "c_11223344"},
        },
    },
    MESSAGE_RECEIVED: {
        "type": MESSAGE_RECEIVED,
        "timestamp": "2026-12-05T09:30:00+00:00",
        "data": {
            "account_id": "acc_3f1c2b7a",
            "conversation_id": "c_9a8b7c6d",
            "message_id": "m_0f1e2d3c",
            "stream_id": "s_1a2b3c4d",
            "topic_id": "t_5e6f7a8b",
            "direction": "inbound",
            "subject": "Where is my order?",
            "from": {"name": "Ada Customer", "address": "ada@example.com"},
            "to": [{"name": "", "address": "support@acme.com"}],
            "cc": [],
            "text": "Hello, my order 1234 has not arrived.",
            "has_attachment": False,
            "received_at": "2026-12-05T09:29:58+00:00",
            "thread_reason": "new",
        },
    },
    MESSAGE_SENT: {
        "type": MESSAGE_SENT,
        "timestamp": "2026-12-05T09:35:00+00:00",
        "data": {
            "account_id": "acc_3f1c2b7a",
            "conversation_id": "c_9a8b7c6d",
            "message_id": "m_77aa88bb",
            "stream_id": "s_1a2b3c4d",
            "topic_id": "t_5e6f7a8b",
            "direction": "outbound",
            "subject": "Re: Where is my order?",
            "from": {"name": "Acme Support", "address": "support@acme.com"},
            "to": [{"name": "Ada Customer", "address": "ada@example.com"}],
            "cc": [],
            "text": "It ships today.",
            "has_attachment": False,
            "received_at": "2026-12-05T09:35:00+00:00",
        },
    },
    MESSAGE_DELIVERY_CHANGED: {
        "type": MESSAGE_DELIVERY_CHANGED,
        "timestamp": "2026-12-05T09:35:02+00:00",
        "data": {
            "account_id": "acc_3f1c2b7a",
            "conversation_id": "c_9a8b7c6d",
            "message_id": "m_77aa88bb",
            "status": "sent",
            "detail": "250 2.0.0 Ok: queued as 4XyZ",
        },
    },
    STREAM_STATUS_CHANGED: {
        "type": STREAM_STATUS_CHANGED,
        "timestamp": "2026-12-05T09:30:00+00:00",
        "data": {
            "account_id": "acc_3f1c2b7a",
            "stream_id": "s_1a2b3c4d",
            "topic_id": "t_5e6f7a8b",
            "address": "support@acme.com",
            "status": "receiving",
            "previous_status": "awaiting_mail",
        },
    },
    DOMAIN_VERIFICATION_CHANGED: {
        "type": DOMAIN_VERIFICATION_CHANGED,
        "timestamp": "2026-12-05T10:00:00+00:00",
        "data": {"account_id": "acc_3f1c2b7a", "domain_id": "d_4d3c2b1a", "name": "acme.com", "status": "verified"},
    },
}
