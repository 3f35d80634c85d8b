"""Broker facts -> webhook events: the types, the keys that make a fact one delivery, and the documented examples."""

import json
from datetime import UTC, datetime

import pytest

from mailstream_common.contracts import (
    Address,
    ConversationChanged,
    ConversationTimelineRecorded,
    DomainChanged,
    MessageDeliveryChanged,
    MessageStored,
    StreamChanged,
)
from mailstream_inbox.webhooks import payloads

AT = datetime(2026, 12, 5, 9, 30, tzinfo=UTC)


def stored(**overrides) -> MessageStored:
    fields = {
        "account_id": "acc",
        "topic_id": "t",
        "stream_id": "s",
        "conversation_id": "c",
        "message_id": "m",
        "direction": "inbound",
        "is_first_message": True,
        "from": Address(name="Ada", address="ada@example.com"),
        "subject": "Where is my order?",
        "text": "Hello",
        "received_at": AT,
        "thread_reason": "new",
        "occurred_at": AT,
    }
    return MessageStored.model_validate({**fields, **overrides})


def stream_changed(**overrides) -> StreamChanged:
    fields = {
        "change": "updated",
        "version": 2,
        "account_id": "acc",
        "topic_id": "t",
        "stream_id": "s",
        "address": "support@acme.com",
        "forwarding_address": "s-x@in.mailstream.test",
        "allow_agent_send": True,
        "status": "receiving",
    }
    return StreamChanged(**{**fields, **overrides})


def test_a_first_inbound_message_is_a_conversation_created_and_a_message_received():
    events = payloads.from_event(stored())
    assert [e.type for e in events] == ["conversation.created", "message.received"]
    assert events[0].data["customer"] == {"name": "Ada", "address": "ada@example.com"}
    assert events[1].data["text"] == "Hello" and events[1].data["thread_reason"] == "new"
    assert {e.account_id for e in events} == {"acc"}


def test_the_fact_key_names_the_fact_so_a_republished_event_is_one_delivery():
    first, again = stored(), stored()
    assert first.event_id != again.event_id
    assert [e.fact_key for e in payloads.from_event(first)] == [e.fact_key for e in payloads.from_event(again)]


@pytest.mark.parametrize(
    ("event", "types"),
    [
        (stored(is_first_message=False), ["message.received"]),
        (stored(direction="outbound", is_first_message=False, thread_reason=None), ["message.sent"]),
        (stored(imported=True), []),
        (
            ConversationChanged(account_id="acc", conversation_id="c", status="closed", changed_by="agent:k"),
            ["conversation.updated"],
        ),
        (
            MessageDeliveryChanged(account_id="acc", conversation_id="c", message_id="m", status="sent"),
            ["message.delivery_changed"],
        ),
        (
            ConversationTimelineRecorded(
                account_id="acc", conversation_id="c", entry_id="e", kind="merged", at=AT, actor="agent:k"
            ),
            ["conversation.merged"],
        ),
        (
            ConversationTimelineRecorded(
                account_id="acc", conversation_id="c", entry_id="e", kind="snoozed", at=AT, actor="agent:k"
            ),
            [],
        ),
        (
            DomainChanged(change="status_changed", account_id="acc", domain_id="d", name="acme.com", status="verified"),
            ["domain.verification_changed"],
        ),
        (DomainChanged(change="key_rotated", account_id="acc", domain_id="d", name="acme.com", status="verified"), []),
    ],
)
def test_each_broker_fact_maps_to_its_webhook_types(event, types):
    assert [e.type for e in payloads.from_event(event)] == types


@pytest.mark.parametrize(
    ("event", "previous", "expected"),
    [
        (stream_changed(change="created", version=1, status="awaiting_mail"), None, "awaiting_mail"),
        (stream_changed(status="receiving"), "awaiting_mail", "receiving"),
        (stream_changed(status="receiving"), "receiving", None),  # a rename: not a status change
        (stream_changed(change="snapshot", status="receiving"), None, None),  # never seen, not news
        (stream_changed(change="deleted", deleted=True), "receiving", "deleted"),
    ],
)
def test_a_stream_status_change_is_told_only_when_the_status_changed(event, previous, expected):
    found = payloads.stream_status_event(event, previous)
    assert (found.data["status"] if found else None) == expected
    if found:
        assert found.data["previous_status"] == previous and found.type == "stream.status_changed"


def test_the_body_is_the_standard_webhooks_shape_and_stable_bytes():
    event = payloads.from_event(stored())[1]
    body = json.loads(event.body())
    assert set(body) == {"type", "timestamp", "data"}
    assert body["type"] == "message.received" and body["timestamp"] == AT.isoformat()
    assert event.body() == event.body()


def test_every_type_has_a_description_and_an_example_of_the_shape_we_send():
    samples = {
        "conversation.created": payloads.from_event(stored())[0],
        "message.received": payloads.from_event(stored())[1],
        "message.sent": payloads.from_event(stored(direction="outbound", is_first_message=False, thread_reason=None))[
            0
        ],
        "conversation.updated": payloads.from_event(
            ConversationChanged(account_id="a", conversation_id="c", status="open", changed_by="system")
        )[0],
        "conversation.merged": payloads.from_event(
            ConversationTimelineRecorded(
                account_id="a", conversation_id="c", entry_id="e", kind="merged", at=AT, actor="x"
            )
        )[0],
        "message.delivery_changed": payloads.from_event(
            MessageDeliveryChanged(account_id="a", conversation_id="c", message_id="m", status="sent")
        )[0],
        "stream.status_changed": payloads.stream_status_event(stream_changed(), "awaiting_mail"),
        "domain.verification_changed": payloads.from_event(
            DomainChanged(change="status_changed", account_id="a", domain_id="d", name="x.com", status="failed")
        )[0],
    }
    assert set(samples) == set(payloads.EVENT_TYPES) == set(payloads.EXAMPLES)
    for name, sample in samples.items():
        example = payloads.EXAMPLES[name]
        assert example["type"] == name
        real = json.loads(sample.body())["data"]
        # The example documents every field sent (optional ones may be left out of a real event).
        assert set(real) <= set(example["data"]), name
        assert set(example["data"]) - set(real) <= {"thread_reason", "participants"}, name
