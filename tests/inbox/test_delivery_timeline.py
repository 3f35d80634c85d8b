"""The delivery timeline, the pure part: which entries a delivery report adds, and how a retry is planned."""

from datetime import UTC, datetime, timedelta

import pytest

from mailstream_common.contracts import DeliveryReported
from mailstream_inbox.consumers.delivery import next_delivery
from mailstream_inbox.delivery_timeline import MAX_ENTRIES, entries_of_report, extended, timeline_of
from mailstream_inbox.use_cases.retry_delivery import retry_plan

NOW = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)
NEXT = NOW + timedelta(seconds=30)


def report(status: str, **fields) -> DeliveryReported:
    return DeliveryReported(message_id="m1", account_id="a1", status=status, occurred_at=NOW, **fields)


def kinds(entries) -> list[str]:
    return [e.type for e in entries]


def test_a_deferral_is_the_attempt_with_the_relays_reply_then_the_next_attempt_time():
    entries = entries_of_report(
        report("deferred", smtp_code=451, relay_reply="451 4.3.2 try later", next_attempt_at=NEXT), 2, NOW
    )
    assert kinds(entries) == ["attempt", "deferred"]
    assert (entries[0].attempt, entries[0].smtp_code, entries[0].reply) == (3, 451, "451 4.3.2 try later")
    assert entries[1].next_attempt_at == NEXT


def test_sent_names_the_relays_queue_id():
    entries = entries_of_report(
        report("sent", smtp_code=250, relay_reply="250 2.0.0 Ok: queued as 4F2A1C", relay_queue_id="4F2A1C"), 0, NOW
    )
    assert kinds(entries) == ["attempt", "sent"] and entries[1].relay_queue_id == "4F2A1C"


@pytest.mark.parametrize(
    ("fields", "expected_kinds", "reason"),
    [
        (
            {"failure_reason": "rejected", "smtp_code": 550, "relay_reply": "550 5.1.1 no"},
            ["attempt", "failed"],
            "rejected",
        ),
        ({"failure_reason": "suppressed"}, ["failed"], "suppressed"),  # never reached the relay
        ({"failure_reason": "expired", "relay_reply": "451 busy"}, ["attempt", "failed"], "expired"),
        ({}, ["failed"], None),  # an older sender that did not say why
    ],
)
def test_a_failure_says_why(fields, expected_kinds, reason):
    entries = entries_of_report(report("failed", **fields), 0, NOW)
    assert kinds(entries) == expected_kinds and entries[-1].reason == reason


@pytest.mark.parametrize(("permanent", "kind"), [(True, "hard"), (False, "soft")])
def test_a_bounce_carries_the_parsed_report(permanent, kind):
    bounce = DeliveryReported(
        message_id="m1",
        status="bounced",
        permanent=permanent,
        smtp_code=550,
        dsn_status="5.1.1",
        detail="550 5.1.1 User unknown",
        recipient="nobody@customer.example",
        occurred_at=NOW,
    )
    (entry,) = entries_of_report(bounce, 1, NOW)
    assert entry.type == "bounced" and entry.bounce is not None
    assert (entry.bounce.kind, entry.bounce.status, entry.bounce.smtp_code) == (kind, "5.1.1", 550)
    assert entry.bounce.recipient == "nobody@customer.example"


def test_reports_build_the_timeline_in_order_and_the_queued_entry_opens_it():
    delivery = None
    for incoming in [
        report("deferred", smtp_code=451, relay_reply="451 later", next_attempt_at=NEXT, detail="will retry: 451"),
        report("sent", smtp_code=250, relay_reply="250 queued as X1", relay_queue_id="X1", attempt=2),
    ]:
        delivery = next_delivery(delivery, incoming, NOW)
    message = {"created_at": NOW - timedelta(seconds=1), "delivery": delivery}
    timeline = timeline_of(message)
    assert kinds(timeline) == ["queued", "attempt", "deferred", "attempt", "sent"]
    assert [e.attempt for e in timeline if e.type == "attempt"] == [1, 2]


def test_the_timeline_keeps_the_newest_entries():
    many = entries_of_report(report("deferred", relay_reply="451", next_attempt_at=NEXT), 0, NOW) * MAX_ENTRIES
    assert len(extended([], many)) == MAX_ENTRIES


def failed_message(reported: str = "failed", **delivery) -> dict:
    return {
        "_id": "m1",
        "account_id": "a1",
        "stream_id": "s1",
        "conversation_id": "c1",
        "direction": "outbound",
        "from": {"name": "Acme", "address": "support@acme.example"},
        "to": [{"name": "", "address": "ann@example.net"}],
        "subject": "Re: hi",
        "text": "hello",
        "message_id_header": "<abc@in.mailstream.test>",
        "in_reply_to": ["<q@example.net>"],
        "created_at": NOW,
        "delivery": {"status": "failed", "reported": reported, "version": 3, "timeline": [], **delivery},
    }


def test_a_retry_queues_the_message_in_a_new_round_with_the_same_message_id():
    plan = retry_plan(failed_message(retry_round=1), "agent:k1", NOW, "owner")
    assert not isinstance(plan, str)
    assert (plan.delivery["status"], plan.delivery["version"], plan.delivery["retry_round"]) == ("queued", 4, 2)
    assert [e["type"] for e in plan.delivery["timeline"]] == ["retried"]
    assert plan.announcement["version"] == 4 and plan.announcement["timeline"] == plan.delivery["timeline"]
    request = plan.request
    assert (request.message_id, request.message_id_header, request.retry_round) == ("m1", "<abc@in.mailstream.test>", 2)
    assert request.in_reply_to == "<q@example.net>" and request.to[0].address == "ann@example.net"


@pytest.mark.parametrize(
    ("message", "why"),
    [
        ({**failed_message(), "delivery": {"status": "sent", "version": 2}}, "not failed"),
        ({**failed_message(), "delivery": {"status": "queued", "version": 2}}, "not failed"),
        (failed_message("bounced"), "bounced"),
        ({**failed_message(), "direction": "inbound"}, "outbound"),
        ({**failed_message(), "delivery_announcement": {"version": 3}}, "changing right now"),
    ],
)
def test_only_a_failed_outbound_message_can_be_retried(message, why):
    plan = retry_plan(message, "agent:k1", NOW, "owner")
    assert isinstance(plan, str) and why in plan


def test_a_request_the_broker_never_took_is_retried_whole():
    """Failed to queue (the broker refused the publish): the stored request, with its template and attachments,
    goes out in the new round, not a copy made from the message."""
    plan = retry_plan(failed_message(None), "agent:k1", NOW, "owner")
    message = {**failed_message(None), "pending_event": plan.request.model_dump(mode="json", by_alias=True)}
    message["pending_event"]["template"] = {"html": "<div>{{ content }}</div>", "text": "{{ content }}"}
    again = retry_plan(message, "agent:k2", NOW, "owner")
    assert again.request.template is not None and again.request.retry_round == 1
    assert again.request.event_id != message["pending_event"]["event_id"]
