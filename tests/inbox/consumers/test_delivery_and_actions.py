"""Sender's delivery reports and automation's action commands, applied by the inbox consumers exactly once."""

from mailstream_common.contracts import (
    ConversationActionsRequested,
    ConversationChanged,
    DeliveryReported,
    MessageDeliveryChanged,
    ReplyRequested,
)
from tests.inbox.api.test_threading_and_replies import only_conversation, reply
from tests.inbox.conftest import consumed, handled
from tests.inbox.consumers.test_store import conversations_of, messages_of
from tests.support.inbox_gateway import EventTap


async def report(test_broker, **fields):
    before = handled("inbox.delivery")
    await test_broker.publish(DeliveryReported(**fields))
    await consumed("inbox.delivery", before, 1)


async def delivery_of(client, message_id):
    response = await client.get(f"/v1/messages/{message_id}")
    assert response.status_code == 200, response.text
    return response.json()["delivery"]


async def test_delivery_reports_move_forward_only(stream, deliver, backends, test_broker):
    await deliver(stream)
    conversation = await only_conversation(stream)
    request = await reply(stream, conversation["id"], backends, text="On its way")
    agent, account_id, message_id = stream.account.agent, stream.account.account_id, request.message_id
    sent_bytes = b"DKIM-Signature: v=1; a=rsa-sha256\r\nSubject: Re: x\r\n\r\nOn its way\r\n"

    async with EventTap(backends.amqp_url, [MessageDeliveryChanged]) as tap:
        await report(test_broker, account_id=account_id, message_id=message_id, status="deferred", detail="451 later")
        delivery = await delivery_of(agent, message_id)
        assert (delivery["status"], delivery["detail"]) == ("queued", "451 later")
        # A deferral keeps the status and is announced with its timeline entry.
        changed = await tap.next_matching(MessageDeliveryChanged, lambda e: e.message_id == message_id)
        assert changed.status == "queued" and [e.type for e in changed.timeline] == ["deferred"]

        await report(
            test_broker,
            account_id=account_id,
            message_id=message_id,
            status="sent",
            detail="250 ok",
            attempt=2,
            raw=sent_bytes,
        )
        changed = await tap.next_matching(MessageDeliveryChanged, lambda e: e.message_id == message_id)
        assert (changed.status, changed.conversation_id) == ("sent", conversation["id"])
        delivery = await delivery_of(agent, message_id)
        assert (delivery["status"], delivery["detail"]) == ("sent", "250 ok")
        raw = await agent.get(f"/v1/messages/{message_id}/raw")
        assert raw.status_code == 200 and raw.content == sent_bytes

        # A late deferral of an earlier attempt and a duplicate "sent" change nothing.
        await report(
            test_broker, account_id=account_id, message_id=message_id, status="deferred", detail="old", attempt=1
        )
        await report(
            test_broker, account_id=account_id, message_id=message_id, status="sent", detail="250 ok", attempt=2
        )
        assert (await delivery_of(agent, message_id))["status"] == "sent"

        # A bounce (no account id: VERP names only the message) turns it into failed, with the reason.
        await report(
            test_broker, message_id=message_id, status="bounced", detail="550 5.1.1 user unknown", permanent=True
        )
        changed = await tap.next_matching(MessageDeliveryChanged, lambda e: e.message_id == message_id)
        assert changed.status == "failed"
        delivery = await delivery_of(agent, message_id)
        assert delivery["status"] == "failed" and "550 5.1.1 user unknown" in delivery["detail"]

        # Nothing brings a failed message back.
        await report(test_broker, account_id=account_id, message_id=message_id, status="sent", attempt=3)
        assert (await delivery_of(agent, message_id))["status"] == "failed"

    # Reports for messages that are not ours, or that name another account, are ignored.
    await report(test_broker, account_id="someone-else", message_id=message_id, status="sent")
    await report(test_broker, message_id="0" * 32, status="sent")
    assert (await delivery_of(agent, message_id))["status"] == "failed"


async def test_failed_sending_is_shown_with_its_reason(stream, deliver, backends, test_broker):
    await deliver(stream)
    conversation = await only_conversation(stream)
    request = await reply(stream, conversation["id"], backends, text="x")
    await report(
        test_broker,
        account_id=stream.account.account_id,
        message_id=request.message_id,
        status="failed",
        detail="554 rejected by relay",
        permanent=True,
    )
    [_, outbound] = await messages_of(stream.account.agent, conversation["id"])
    assert outbound["delivery"]["status"] == "failed"
    assert outbound["delivery"]["detail"] == "554 rejected by relay"


async def actions(test_broker, command, times=1):
    before = handled("inbox.actions")
    for _ in range(times):
        await test_broker.publish(command)
    await consumed("inbox.actions", before, times)


async def test_rule_actions_apply_once_and_auto_reply_once(stream, deliver, backends, test_broker):
    await deliver(stream, subject="Refund please")
    conversation = await only_conversation(stream)
    [trigger] = await messages_of(stream.account.agent, conversation["id"])
    canned = await stream.account.admin.post(
        "/v1/canned-responses", json={"title": "ack", "text": "Thanks {{ customer.name }}, we are on it."}
    )
    command = ConversationActionsRequested(
        account_id=stream.account.account_id,
        conversation_id=conversation["id"],
        trigger_message_id=trigger["id"],
        rule_id="rule-1",
        rule_name="Refunds",
        actions=[
            {"type": "add_tags", "tags": ["refund", "billing"]},
            {"type": "remove_tags", "tags": ["billing"]},
            {"type": "assign", "assignee": "team-billing"},
            {"type": "set_priority", "priority": "high"},
            {"type": "set_status", "status": "pending"},
            {"type": "auto_reply", "canned_response_id": canned.json()["id"]},
        ],
    )
    async with EventTap(backends.amqp_url, [ConversationChanged, ReplyRequested]) as tap:
        await actions(test_broker, command, times=3)  # redelivered
        changed = await tap.next_matching(ConversationChanged, lambda e: e.conversation_id == conversation["id"])
        auto = await tap.next_matching(ReplyRequested, lambda e: e.conversation_id == conversation["id"])
    assert changed.changed_by == "automation:rule-1"
    assert (changed.tags, changed.assignee, changed.priority, changed.status) == (
        ["refund"],
        "team-billing",
        "high",
        "pending",
    )
    assert auto.kind == "auto_reply" and auto.requested_by == "automation:rule-1"
    assert auto.text == "Thanks Ann Customer, we are on it."
    assert auto.in_reply_to == trigger["message_id_header"]
    assert auto.extra_headers.get("Auto-Submitted") == "auto-replied"

    shown = (await stream.account.agent.get(f"/v1/conversations/{conversation['id']}")).json()
    assert (shown["tags"], shown["assignee"], shown["priority"], shown["status"]) == (
        ["refund"],
        "team-billing",
        "high",
        "pending",
    )
    messages = await messages_of(stream.account.agent, conversation["id"])
    assert [m["direction"] for m in messages] == ["inbound", "outbound"]
    assert shown["message_count"] == 2

    # An agent removes the tag; a late redelivery of the same command must not put it back.
    await stream.account.agent.patch(f"/v1/conversations/{conversation['id']}", json={"tags": []})
    await actions(test_broker, command)
    assert (await stream.account.agent.get(f"/v1/conversations/{conversation['id']}")).json()["tags"] == []
    assert len(await messages_of(stream.account.agent, conversation["id"])) == 2


async def test_no_auto_reply_to_automatic_mail(stream, deliver, test_broker):
    await deliver(stream, extra_headers=[("Auto-Submitted", "auto-replied")])
    conversation = await only_conversation(stream)
    [trigger] = await messages_of(stream.account.agent, conversation["id"])
    canned = await stream.account.admin.post("/v1/canned-responses", json={"title": "ack", "text": "Thanks"})
    await actions(
        test_broker,
        ConversationActionsRequested(
            account_id=stream.account.account_id,
            conversation_id=conversation["id"],
            trigger_message_id=trigger["id"],
            rule_id="rule-2",
            rule_name="Ack",
            actions=[
                {"type": "auto_reply", "canned_response_id": canned.json()["id"]},
                {"type": "add_tags", "tags": ["x"]},
            ],
        ),
    )
    assert len(await messages_of(stream.account.agent, conversation["id"])) == 1
    [shown] = await conversations_of(stream.account.agent, stream_id=stream.stream_id)
    assert shown["tags"] == ["x"]


async def test_actions_for_another_accounts_conversation_are_ignored(stream, other_account, deliver, test_broker):
    await deliver(stream)
    conversation = await only_conversation(stream)
    await actions(
        test_broker,
        ConversationActionsRequested(
            account_id=other_account.account_id,
            conversation_id=conversation["id"],
            trigger_message_id="0" * 32,
            rule_id="rule-x",
            rule_name="x",
            actions=[{"type": "add_tags", "tags": ["stolen"]}],
        ),
    )
    assert (await only_conversation(stream))["tags"] == []
