"""The live hub: broker events to the SSE clients of their account."""

from datetime import UTC, datetime

import pytest

from mailstream_common.contracts import Address, ConversationChanged, MessageDeliveryChanged, MessageStored
from mailstream_inbox.live_hub import LiveHub, to_live_event


def _stored(account_id: str, direction: str = "inbound") -> MessageStored:
    return MessageStored(
        account_id=account_id,
        topic_id="t",
        stream_id="s",
        conversation_id="c",
        message_id="m",
        direction=direction,
        is_first_message=True,
        **{"from": Address(name="Customer", address="c@example.com")},
        subject="Hello",
        received_at=datetime.now(UTC),
    )


def test_live_event_names_follow_the_public_contract():
    assert to_live_event(_stored("a"))[1].name == "message.received"
    assert to_live_event(_stored("a", "outbound"))[1].name == "message.sent"
    changed = MessageDeliveryChanged(account_id="a", conversation_id="c", message_id="m", status="sent")
    assert to_live_event(changed)[1].name == "message.delivery_changed"
    conversation = ConversationChanged(account_id="a", conversation_id="c", status="closed", changed_by="system")
    account, event = to_live_event(conversation)
    assert (account, event.name, event.data["status"]) == ("a", "conversation.changed", "closed")
    assert event.encode().startswith(f"id: {conversation.event_id}\nevent: conversation.changed\ndata: {{")


async def test_live_hub_delivers_per_account_and_drops_a_client_that_cannot_keep_up():
    hub = LiveHub(client_queue_size=2)
    with hub.subscribe("a") as slow, hub.subscribe("b") as other:
        assert hub.client_count("a") == 1
        for _ in range(3):
            await hub.handle(_stored("a"), None)
        assert other.queue.empty()
        assert slow.closed
        with pytest.raises(EOFError):
            while True:
                await slow.next(timeout=0.1)
    assert hub.client_count() == 0


def test_a_disabled_webhook_subscription_reaches_its_accounts_live_stream():
    from mailstream_common.contracts import WebhookSubscriptionDisabled

    event = WebhookSubscriptionDisabled(
        account_id="acc",
        subscription_id="wh_1",
        url="https://crm.example.com/hook",
        failing_since=datetime(2026, 12, 1, tzinfo=UTC),
        reason="HTTP 503",
    )
    account_id, live = to_live_event(event)
    assert account_id == "acc" and live.name == "webhook.subscription_disabled"
    assert live.data == {
        "subscription_id": "wh_1",
        "url": "https://crm.example.com/hook",
        "failing_since": "2026-12-01T00:00:00+00:00",
        "reason": "HTTP 503",
    }
