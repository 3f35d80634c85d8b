"""Delivery reports for one message handled at the same time (prefetch > 1, or two inbox workers).

A `sent` and a bounce for the same message must not both "win" (the message ending `sent` after its bounce, or
both changes announced out of order). These tests publish such reports together on the real broker, to the real
consumer of the in-process gateway, against the session's database; and leave behind what a worker that died
mid-change would (its write with the announcement still pending) to check that the change is still announced
exactly once, in order.
"""

import asyncio
from datetime import timedelta

from mailstream_common.contracts import DeliveryReported, MessageDeliveryChanged, ReplyRequested, utcnow
from mailstream_common.metrics import MESSAGES_CONSUMED
from mailstream_inbox.consumers import delivery
from mailstream_inbox.repositories import messages as messages_repo
from tests.inbox.api.test_threading_and_replies import only_conversation
from tests.support.inbox_gateway import EventTap
from tests.support.waiting import wait_for

ROUNDS = 16  # messages, each getting its reports at once (the unfixed consumer got 21 of 24 wrong)
SENTINEL_MESSAGE_ID = "f" * 32


def outcome_count(outcome: str) -> float:
    return MESSAGES_CONSUMED.labels("inbox.delivery", outcome)._value.get()


async def queue_replies(stream, conversation_id: str, count: int) -> list[str]:
    ids = []
    for n in range(count):
        response = await stream.account.agent.post(
            f"/v1/conversations/{conversation_id}/replies", json={"text": f"Reply {n}"}
        )
        assert response.status_code == 202, response.text
        ids.append(response.json()["message_id"])
    return ids


async def events_until_sentinel(tap: EventTap, test_broker, account_id: str) -> list[MessageDeliveryChanged]:
    """Every delivery change published so far: a marker published now arrives after all of them (one FIFO queue;
    the consumer published and had confirmed each one before it acked the report that caused it)."""
    await test_broker.publish(
        MessageDeliveryChanged(
            account_id=account_id, conversation_id=None, message_id=SENTINEL_MESSAGE_ID, status="queued"
        )
    )
    seen = []
    while True:
        event = await tap.next_matching(MessageDeliveryChanged)
        if event.message_id == SENTINEL_MESSAGE_ID:
            return seen
        seen.append(event)


async def one_queued_reply(stream, deliver) -> tuple[str, str]:
    """(account id, message id) of an agent's reply queued in a fresh conversation of `stream`."""
    await deliver(stream)
    conversation = await only_conversation(stream)
    [message_id] = await queue_replies(stream, conversation["id"], 1)
    return stream.account.account_id, message_id


async def test_concurrent_reports_keep_the_highest_status_and_announce_each_change_once(
    stream, deliver, backends, test_broker
):
    await deliver(stream)
    conversation = await only_conversation(stream)
    account_id = stream.account.account_id
    message_ids = await queue_replies(stream, conversation["id"], ROUNDS)
    sent_raw = {mid: f"Subject: Re: x\r\nX-Round: {mid}\r\n\r\nsent\r\n".encode() for mid in message_ids}

    reports = []
    for mid in message_ids:
        # What really happens: a retry's deferral, the relay's acceptance, and its bounce, all queued together.
        reports.append(DeliveryReported(account_id=account_id, message_id=mid, status="deferred", detail="451 busy"))
        reports.append(
            DeliveryReported(
                account_id=account_id, message_id=mid, status="sent", detail="250 ok", attempt=2, raw=sent_raw[mid]
            )
        )
        reports.append(
            DeliveryReported(message_id=mid, status="bounced", detail="550 5.1.1 no such user", permanent=True)
        )

    acked, dead = outcome_count("ack"), outcome_count("dead")
    async with EventTap(backends.amqp_url, [MessageDeliveryChanged]) as tap:
        for report in reports:
            await test_broker.publish(report)

        async def all_applied() -> bool:
            return outcome_count("ack") >= acked + len(reports)

        await wait_for(all_applied, timeout=60, what=f"{len(reports)} delivery reports acked")
        events = await events_until_sentinel(tap, test_broker, account_id)
    assert outcome_count("dead") == dead

    announced: dict[str, list[str]] = {mid: [] for mid in message_ids}
    for event in events:
        announced[event.message_id].append(event.status)
    wrong = {}
    for mid in message_ids:
        response = await stream.account.agent.get(f"/v1/messages/{mid}")
        delivery = response.json()["delivery"]
        raw = await stream.account.agent.get(f"/v1/messages/{mid}/raw")
        # Failed wins whatever the order; "sent" is announced only if it was applied before the bounce, and then
        # before "failed"; the deferral ("queued") only if it was applied first. The relay's copy is kept even when the bounce got there first.
        if (
            delivery["status"] != "failed"
            or "no such user" not in delivery["detail"]
            or announced[mid]
            not in (["failed"], ["sent", "failed"], ["queued", "failed"], ["queued", "sent", "failed"])
            or raw.content != sent_raw[mid]
        ):
            wrong[mid] = (delivery["status"], delivery["detail"], announced[mid], raw.status_code)
    assert not wrong, f"{len(wrong)} of {ROUNDS} messages went wrong: {wrong}"


async def reports_handled(test_broker, *reports: DeliveryReported) -> None:
    acked, dead = outcome_count("ack"), outcome_count("dead")
    for report in reports:
        await test_broker.publish(report)

    async def all_acked() -> bool:
        return outcome_count("ack") >= acked + len(reports)

    await wait_for(all_acked, timeout=60, what=f"{len(reports)} delivery report(s) acked")
    assert outcome_count("dead") == dead


async def crashed_after_writing(db, report: DeliveryReported, *, age_seconds: float = 0.0) -> dict:
    """What a worker that died after writing `report`'s change, before its announcement was confirmed, leaves."""
    message = await messages_repo.get_internal(db, report.message_id)
    change = delivery.planned_change(message, report, None, utcnow() - timedelta(seconds=age_seconds), "dead")
    written = await messages_repo.write_delivery(
        db, message["_id"], change["version"] - 1, change["delivery"], None, change["announcement"]
    )
    assert written is not None and written["delivery_announcement"]["owner"] == "dead"
    return change


async def nothing_pending(db, message_id: str) -> bool:
    return "delivery_announcement" not in await messages_repo.get_internal(db, message_id)


async def test_a_report_redelivered_after_a_crash_announces_its_change_and_others_wait_for_it(
    stream, deliver, backends, test_broker, inbox_gateway
):
    account_id, message_id = await one_queued_reply(stream, deliver)
    sent = DeliveryReported(account_id=account_id, message_id=message_id, status="sent", detail="250 ok")
    bounce = DeliveryReported(message_id=message_id, status="bounced", detail="550 gone", permanent=True)
    await crashed_after_writing(inbox_gateway.db, sent)

    async with EventTap(backends.amqp_url, [MessageDeliveryChanged]) as tap:
        # The bounce comes first and must not write before `sent` is announced; then the broker redelivers `sent`.
        await reports_handled(test_broker, bounce, sent)
        events = await events_until_sentinel(tap, test_broker, account_id)

    assert [e.status for e in events] == ["sent", "failed"]
    delivery_now = (await stream.account.agent.get(f"/v1/messages/{message_id}")).json()["delivery"]
    assert (delivery_now["status"], delivery_now["detail"]) == ("failed", "bounced: 550 gone")
    assert await nothing_pending(inbox_gateway.db, message_id)


async def test_a_dead_workers_announcement_is_made_by_the_next_report_once_its_lease_ran_out(
    stream, deliver, backends, test_broker, inbox_gateway
):
    account_id, message_id = await one_queued_reply(stream, deliver)
    sent = DeliveryReported(account_id=account_id, message_id=message_id, status="sent", detail="250 ok")
    await crashed_after_writing(inbox_gateway.db, sent, age_seconds=2 * delivery.ANNOUNCE_LEASE_SECONDS)

    async with EventTap(backends.amqp_url, [MessageDeliveryChanged]) as tap:
        # `sent` itself never comes back (dead-lettered, say); the bounce must not wait for it forever.
        await reports_handled(test_broker, DeliveryReported(message_id=message_id, status="bounced", detail="550"))
        events = await events_until_sentinel(tap, test_broker, account_id)

    assert [e.status for e in events] == ["sent", "failed"]
    assert (await stream.account.agent.get(f"/v1/messages/{message_id}")).json()["delivery"]["status"] == "failed"
    assert await nothing_pending(inbox_gateway.db, message_id)


async def test_a_change_written_but_not_announced_before_a_crash_is_announced_once_on_redelivery(
    stream, deliver, backends, test_broker, inbox_gateway
):
    account_id, message_id = await one_queued_reply(stream, deliver)
    sent = DeliveryReported(account_id=account_id, message_id=message_id, status="sent", detail="250 ok")
    await crashed_after_writing(inbox_gateway.db, sent)

    async with EventTap(backends.amqp_url, [MessageDeliveryChanged]) as tap:
        await reports_handled(test_broker, sent)  # the broker redelivers it
        await reports_handled(test_broker, sent)  # and once more: nothing left to finish or announce
        events = await events_until_sentinel(tap, test_broker, account_id)

    [announced] = events
    assert (announced.message_id, announced.status, announced.detail) == (message_id, "sent", "250 ok")
    assert await nothing_pending(inbox_gateway.db, message_id)


async def test_concurrent_retries_of_a_failed_message_queue_it_once_and_the_old_round_changes_nothing(
    stream, deliver, backends, test_broker
):
    account_id, message_id = await one_queued_reply(stream, deliver)
    rejected = DeliveryReported(
        account_id=account_id,
        message_id=message_id,
        status="failed",
        detail="relay refused: 550 5.1.1 no such user",
        permanent=True,
        smtp_code=550,
        relay_reply="550 5.1.1 no such user",
        failure_reason="rejected",
    )
    await reports_handled(test_broker, rejected)

    async with EventTap(backends.amqp_url, [ReplyRequested, MessageDeliveryChanged]) as tap:
        answers = await asyncio.gather(
            *(stream.account.agent.post(f"/v1/messages/{message_id}/retry") for _ in range(8))
        )
        assert sorted(a.status_code for a in answers) == [202] + [409] * 7, [a.text for a in answers]
        # The old round's outcome, re-reported late (a redelivered command), changes nothing now.
        await reports_handled(test_broker, rejected.model_copy(update={"event_id": "late-copy"}))
        published = await tap.next_matching(ReplyRequested)
        assert (published.message_id, published.retry_round) == (message_id, 1)
        # Anything else published for it would arrive before a marker published now (one FIFO queue).
        await test_broker.publish(
            published.model_copy(update={"event_id": "marker", "message_id": SENTINEL_MESSAGE_ID})
        )
        more = []
        while (event := await tap.next_matching(ReplyRequested)).message_id != SENTINEL_MESSAGE_ID:
            more.append(event)
    assert more == [], "exactly one request of the new round was published"

    delivery = (await stream.account.agent.get(f"/v1/messages/{message_id}/delivery")).json()
    assert (delivery["status"], delivery["retry_round"]) == ("queued", 1)
    assert [e["type"] for e in delivery["timeline"]] == ["queued", "attempt", "failed", "retried"]
