"""Wake-ups against the real database and broker: a scheduled reply leaves exactly once however often (and however
concurrently) its wake-up arrives, and a wake-up of a replaced or cancelled snooze changes nothing."""

import asyncio
from datetime import timedelta

from mailstream_common.contracts import ReplyRequested, ScheduledReplyDue, SnoozeDue, utcnow
from mailstream_inbox.use_cases import scheduled_send, snooze
from tests.inbox.consumers.test_store import conversations_of
from tests.support.inbox_gateway import EventTap


async def only_conversation(stream):
    [conversation] = await conversations_of(stream.account.agent, stream_id=stream.stream_id)
    return conversation


async def test_a_scheduled_reply_leaves_once_however_often_its_wake_up_arrives(
    stream, deliver, inbox_gateway, backends, test_broker
):
    await deliver(stream, subject="Tomorrow please", text="Hi")
    conversation = await only_conversation(stream)
    send_at = (utcnow() + timedelta(hours=1)).replace(microsecond=0)
    response = await stream.account.agent.post(
        f"/v1/conversations/{conversation['id']}/replies",
        json={"text": "Good morning", "apply_template": False, "send_at": send_at.isoformat()},
    )
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "scheduled"
    message_id = response.json()["message_id"]
    held = await inbox_gateway.db["messages"].find_one({"_id": message_id})
    assert held["schedule"]["state"] == "held" and not held.get("published")

    due = ScheduledReplyDue(
        account_id=stream.account.account_id,
        conversation_id=conversation["id"],
        message_id=message_id,
        schedule_token=held["schedule"]["token"],
        due_at=send_at,
    )
    stale = due.model_copy(update={"schedule_token": "an-earlier-schedule"})
    marker = ReplyRequested.model_validate({**held["pending_event"], "message_id": "marker"})
    async with EventTap(backends.amqp_url, [ReplyRequested]) as tap:
        await asyncio.gather(
            *(scheduled_send.send_due(inbox_gateway.db, test_broker, due) for _ in range(5)),
            scheduled_send.send_due(inbox_gateway.db, test_broker, stale),
        )
        await scheduled_send.send_due(inbox_gateway.db, test_broker, due)  # a redelivery after it left
        await test_broker.publish(marker)  # same channel: anything published before it arrives first
        first = await tap.next_matching(ReplyRequested)
        second = await tap.next_matching(ReplyRequested)
    assert first.message_id == message_id
    assert second.message_id == "marker"

    sent = await inbox_gateway.db["messages"].find_one({"_id": message_id})
    assert sent["schedule"]["state"] == "sent" and sent["published"] is True
    cancel = await stream.account.agent.delete(f"/v1/conversations/{conversation['id']}/scheduled-replies/{message_id}")
    assert cancel.status_code == 409
    timeline = await stream.account.agent.get(f"/v1/conversations/{conversation['id']}/timeline")
    assert [e["kind"] for e in timeline.json()["items"]] == ["reply_scheduled", "scheduled_reply_sent"]


async def test_a_wake_up_of_a_replaced_snooze_changes_nothing(stream, deliver, inbox_gateway, test_broker):
    await deliver(stream, subject="Snooze me twice", text="Hi")
    conversation = await only_conversation(stream)
    path = f"/v1/conversations/{conversation['id']}/snooze"
    until = (utcnow() + timedelta(hours=1)).isoformat()
    assert (await stream.account.agent.put(path, json={"until": until})).status_code == 200
    first = (await inbox_gateway.db["conversations"].find_one({"_id": conversation["id"]}))["snooze"]["token"]
    assert (await stream.account.agent.put(path, json={"until": until})).status_code == 200
    second = (await inbox_gateway.db["conversations"].find_one({"_id": conversation["id"]}))["snooze"]["token"]
    assert first != second

    def wake(token: str) -> SnoozeDue:
        return SnoozeDue(
            account_id=stream.account.account_id,
            conversation_id=conversation["id"],
            snooze_token=token,
            due_at=utcnow(),
        )

    await snooze.wake_due(inbox_gateway.db, test_broker, wake(first))
    assert (await stream.account.agent.get(f"/v1/conversations/{conversation['id']}")).json()["status"] == "snoozed"
    await snooze.wake_due(inbox_gateway.db, test_broker, wake(second))
    await snooze.wake_due(inbox_gateway.db, test_broker, wake(second))  # redelivered
    reopened = (await stream.account.agent.get(f"/v1/conversations/{conversation['id']}")).json()
    assert reopened["status"] == "open" and reopened["snoozed_until"] is None
    timeline = await stream.account.agent.get(f"/v1/conversations/{conversation['id']}/timeline")
    assert [e["kind"] for e in timeline.json()["items"]] == ["snoozed", "snoozed", "woke"]
