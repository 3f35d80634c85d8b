"""Live updates and automation, end to end through the real processes.

- `GET /v1/events` (Server-Sent Events) tells an account about its own new mail and its reply's delivery, and
  nothing about another account's mail (which that account's own stream does get).
- An automation rule made through the gateway tags the conversation and sends exactly one auto-reply (the canned
  response, filled in) to the customer; a second matching mail from the same customer within the rule's interval
  is tagged too but gets no second auto-reply (automation's README: one per rule and customer per
  AUTOMATION_AUTO_REPLY_INTERVAL_HOURS, default 24).
"""

from collections.abc import Iterator
from email.message import EmailMessage
from email.utils import make_msgid

import pytest

from tests.e2e.conftest import System, running_system, wait_for_json
from tests.e2e.scenarios_support import (
    LIVE_ENV,
    EventListener,
    messages_of,
    new_account,
    new_stream,
    relay_mail_to,
    reply,
    smtp_send,
    text_of,
    wait_for_conversation,
    wait_for_sent,
)
from tests.support.backends import Backends
from tests.support.waiting import wait_for_sync

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def system(backends: Backends, tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    with running_system(backends, tmp_path_factory, "live", {"INGEST_AUTH_ENABLED": "false", **LIVE_ENV}) as running:
        yield running


def customer_mail(sender: tuple[str, str], to: str, subject: str, text: str) -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = f"{sender[0]} <{sender[1]}>"
    mail["To"] = to
    mail["Subject"] = subject
    mail["Message-ID"] = make_msgid(domain=sender[1].partition("@")[2])
    mail.set_content(text)
    return mail


def test_event_stream_carries_the_accounts_mail_and_delivery_and_nothing_of_another_account(system: System):
    account_a, api_a = new_account(system, "Live A")
    account_b, api_b = new_account(system, "Live B")
    stream_a = new_stream(api_a, "hello@live-a.test")
    stream_b = new_stream(api_b, "hello@live-b.test")
    assert api_a.get("/v1/events", headers={"Authorization": "Bearer not-a-key"}).status_code == 401

    with (
        EventListener(system, account_a["api_key"]) as events_a,
        EventListener(system, account_b["api_key"]) as events_b,
    ):
        smtp_send(
            system,
            customer_mail(("Ana", "ana@example.net"), "hello@live-a.test", "Live question A", "Is it live?"),
            mail_from="ana@example.net",
            rcpt=stream_a["forwarding_address"],
        )
        smtp_send(
            system,
            customer_mail(("Ben", "ben@example.net"), "hello@live-b.test", "Private question B", "Secret."),
            mail_from="ben@example.net",
            rcpt=stream_b["forwarding_address"],
        )
        _, received = events_a.wait_for(
            lambda name, data: name == "message.received", what="message.received on A's stream"
        )
        conversation_a = wait_for_conversation(api_a, stream_a["id"], "Live question A")
        assert received["conversation_id"] == conversation_a["id"]
        assert received["stream_id"] == stream_a["id"]
        assert received["direction"] == "inbound"
        assert received["subject"] == "Live question A"
        assert received["from"]["address"] == "ana@example.net"
        assert received["is_first_message"] is True

        # B's own stream does get B's mail: the hub saw it, so A not getting it is isolation, not timing.
        _, received_b = events_b.wait_for(
            lambda name, data: name == "message.received", what="message.received on B's stream"
        )
        assert received_b["stream_id"] == stream_b["id"]

        sent = reply(api_a, conversation_a["id"], "Yes, this is live.")
        _, delivery = events_a.wait_for(
            lambda name, data: name == "message.delivery_changed" and data["status"] == "sent",
            what="message.delivery_changed 'sent' for A's reply",
        )
        assert delivery["message_id"] == sent["id"]
        assert delivery["conversation_id"] == conversation_a["id"]
        events_a.check()
        events_b.check()

    b_ids = {stream_b["id"], received_b["conversation_id"], received_b["message_id"]}
    leaked = [(name, data) for name, data in events_a.events if b_ids & {str(v) for v in data.values()}]
    assert leaked == []
    assert not [data for _, data in events_a.events if data.get("subject") == "Private question B"]
    assert not [data for _, data in events_b.events if data.get("conversation_id") == conversation_a["id"]]


def test_refund_rule_tags_and_auto_replies_once_per_customer(system: System):
    _, api = new_account(system, "Automation")
    stream = new_stream(api, "orders@auto.test", display_name="Auto Shop")
    canned = api.post(
        "/v1/canned-responses",
        json={"title": "Refund received", "text": "Hello {{ customer.name }}, we got your refund request."},
    )
    assert canned.status_code == 201, canned.text
    rule = api.post(
        "/v1/automation/rules",
        json={
            "name": "Refunds to billing",
            "conditions": [{"field": "subject", "operator": "contains", "value": "refund"}],
            "actions": [
                {"type": "add_tags", "tags": ["billing"]},
                {"type": "auto_reply", "canned_response_id": canned.json()["id"], "apply_template": False},
            ],
        },
    )
    assert rule.status_code == 201, rule.text
    rule = rule.json()
    assert api.get("/v1/automation/rules").json()["items"][0]["id"] == rule["id"]

    customer = ("Rey Customer", "rey@example.net")
    first = customer_mail(customer, "orders@auto.test", "Refund for order 55", "Please refund order 55.")
    smtp_send(system, first, mail_from=customer[1], rcpt=stream["forwarding_address"])
    unrelated = customer_mail(customer, "orders@auto.test", "Where is order 56", "Just asking.")
    smtp_send(system, unrelated, mail_from=customer[1], rcpt=stream["forwarding_address"])

    conversation = wait_for_json(
        api,
        f"/v1/conversations?stream_id={stream['id']}",
        lambda page: any(c["subject"] == "Refund for order 55" and "billing" in c["tags"] for c in page["items"]),
        what="the refund conversation tagged billing",
    )
    conversation = next(c for c in conversation["items"] if c["subject"] == "Refund for order 55")

    def auto_reply_message():
        outbound = [m for m in messages_of(api, conversation["id"]) if m["direction"] == "outbound"]
        return outbound[0] if outbound else None

    auto = wait_for_sync(auto_reply_message, timeout=30, what="the auto-reply stored on the conversation")
    auto = wait_for_sent(api, conversation["id"], auto["id"])
    [at_relay] = relay_mail_to(system, customer[1])
    assert at_relay["Message-ID"] == auto["message_id_header"]
    assert at_relay["In-Reply-To"] == first["Message-ID"]
    assert "Hello Rey Customer, we got your refund request." in text_of(at_relay)
    assert at_relay["Auto-Submitted"] == "auto-replied"

    # The mail without "refund" fired nothing: no tag, no reply.
    other = wait_for_conversation(api, stream["id"], "Where is order 56")
    assert other["tags"] == []

    # A second refund mail from the same customer inside the interval: tagged, but no second auto-reply.
    second = customer_mail(customer, "orders@auto.test", "Another refund question", "And order 57?")
    smtp_send(system, second, mail_from=customer[1], rcpt=stream["forwarding_address"])
    page = wait_for_json(
        api,
        f"/v1/conversations?stream_id={stream['id']}",
        lambda p: any(c["subject"] == "Another refund question" and "billing" in c["tags"] for c in p["items"]),
        what="the second refund conversation tagged billing",
    )
    second_conversation = next(c for c in page["items"] if c["subject"] == "Another refund question")
    [second_message] = messages_of(api, second_conversation["id"])
    runs = wait_for_json(
        api,
        f"/v1/automation/runs?message_id={second_message['id']}",
        lambda body: any(run["fired"] for run in body["items"]),
        what="the rule's run on the second refund mail",
    )
    run = next(run for run in runs["items"] if run["rule_id"] == rule["id"])
    assert [skipped["type"] for skipped in run["skipped_actions"]] == ["auto_reply"], run
    assert [m["direction"] for m in messages_of(api, second_conversation["id"])] == ["inbound"]
    assert len(relay_mail_to(system, customer[1])) == 1
    fired = api.get(f"/v1/automation/rules/{rule['id']}").json()
    assert fired["fired_count"] == 2
