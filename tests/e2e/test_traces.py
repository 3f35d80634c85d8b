"""Traces end to end: the five services as real processes, switched on by the standard OTEL_* variables, exporting
over OTLP/HTTP to a receiver this module owns (tests/support/otlp_receiver.py).

- One inbound mail that triggers an auto-reply rule is one connected trace: the SMTP DATA span of ingest is its
  only root, every other span's parent is in the trace, and the relay transaction of the auto-reply (the relay's
  250) descends from it through ingest, inbox, automation and sender.
- One agent reply is one trace from the gateway's HTTP request to the relay's 250.
- No span anywhere names a full address or carries the mail's content; ingest's log line of the mail carries the
  trace's id.
"""

import json
import smtplib
from collections.abc import Iterator

import pytest

from tests.e2e.conftest import System, running_system, wait_for_json
from tests.e2e.scenarios_support import messages_of, new_account, new_stream, wait_for_sent
from tests.e2e.test_live_and_automation import customer_mail
from tests.support.backends import Backends
from tests.support.otlp_receiver import OtlpReceiver, ReceivedSpan
from tests.support.waiting import wait_for_sync

pytestmark = pytest.mark.e2e

SERVER, CLIENT, PRODUCER, CONSUMER = 2, 3, 4, 5  # the OTLP protobuf's span kinds
CUSTOMER = ("Rey Customer", "rey.customer@example.net")
SUBJECT = "Refund for order 77"
BODY = "Please refund order 77, the parcel arrived crushed."
AGENT_TEXT = "Refund issued for order 77."


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    receiver = OtlpReceiver().start()
    yield receiver
    receiver.stop()


@pytest.fixture(scope="module")
def system(backends: Backends, tmp_path_factory: pytest.TempPathFactory, receiver: OtlpReceiver) -> Iterator[System]:
    tracing_env = {
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_BSP_SCHEDULE_DELAY": "200",  # ms: spans reach the receiver soon after they end
        "INGEST_AUTH_ENABLED": "false",
    }
    with running_system(backends, tmp_path_factory, "traces", tracing_env) as running:
        yield running


def _ancestry(span: ReceivedSpan, trace: list[ReceivedSpan]) -> list[ReceivedSpan]:
    """`span` and its parents up to the root, nearest first."""
    by_id = {s.span_id: s for s in trace}
    chain = [span]
    while chain[-1].parent_span_id:
        chain.append(by_id[chain[-1].parent_span_id])
    return chain


def _connected(trace: list[ReceivedSpan]) -> bool:
    """Every span's parent arrived (spans end, and are exported, child first)."""
    ids = {s.span_id for s in trace}
    return all(not s.parent_span_id or s.parent_span_id in ids for s in trace)


def _relay_send(trace: list[ReceivedSpan]) -> ReceivedSpan | None:
    return next((s for s in trace if s.name == "smtp send" and s.attributes.get("smtp.reply_code") == 250), None)


def _complete_trace(receiver: OtlpReceiver, trace_id: str, must_have) -> list[ReceivedSpan]:
    def complete():
        trace = receiver.trace(trace_id)
        return trace if must_have(trace) and _connected(trace) else None

    return wait_for_sync(complete, timeout=30, what=f"a complete, connected trace {trace_id}")


def _send_mail(system: System, rcpt: str) -> str:
    """Deliver the customer's mail over SMTP; the mail id from ingest's 250 reply."""
    mail = customer_mail(CUSTOMER, "orders@traced.test", SUBJECT, BODY)
    with smtplib.SMTP("127.0.0.1", system.smtp_port, timeout=30) as smtp:
        smtp.ehlo("client.example.net")
        assert smtp.mail(CUSTOMER[1])[0] == 250
        assert smtp.rcpt(rcpt)[0] == 250
        code, reply = smtp.data(mail.as_bytes())
    assert code == 250, reply
    return reply.decode().rsplit(" ", 1)[-1]  # "2.0.0 OK queued as <mail id>"


@pytest.fixture(scope="module")
def auto_replied(system: System, receiver: OtlpReceiver) -> dict:
    """A stream with an auto-reply rule, one mail to it, and the auto-reply sent (relay's 250)."""
    _, api = new_account(system, "Traced")
    stream = new_stream(api, "orders@traced.test", display_name="Traced Shop")
    canned = api.post("/v1/canned-responses", json={"title": "Got it", "text": "We got your refund request."})
    assert canned.status_code == 201, canned.text
    rule = api.post(
        "/v1/automation/rules",
        json={
            "name": "Refunds",
            "conditions": [{"field": "subject", "operator": "contains", "value": "refund"}],
            "actions": [{"type": "auto_reply", "canned_response_id": canned.json()["id"], "apply_template": False}],
        },
    )
    assert rule.status_code == 201, rule.text
    mail_id = _send_mail(system, stream["forwarding_address"])
    page = wait_for_json(
        api,
        f"/v1/conversations?stream_id={stream['id']}",
        lambda p: any(c["subject"] == SUBJECT and c["message_count"] >= 2 for c in p["items"]),
        what="the conversation with the auto-reply",
    )
    conversation = next(c for c in page["items"] if c["subject"] == SUBJECT)
    [auto] = [m for m in messages_of(api, conversation["id"]) if m["direction"] == "outbound"]
    wait_for_sent(api, conversation["id"], auto["id"])
    return {
        "api": api,
        "mail_id": mail_id,
        "stream": stream,
        "conversation": conversation,
        "auto_reply": auto,
        "rule_id": rule.json()["id"],
    }


def test_one_inbound_mail_is_one_connected_trace_from_smtp_data_to_the_auto_replys_relay_250(
    system: System, receiver: OtlpReceiver, auto_replied: dict
):
    mail_id = auto_replied["mail_id"]
    data = wait_for_sync(
        lambda: next(
            (
                s
                for s in receiver.spans()
                if s.name == "smtp DATA" and s.attributes.get("mailstream.mail_id") == mail_id
            ),
            None,
        ),
        timeout=30,
        what="ingest's SMTP DATA span",
    )
    assert data.service == "mailstream-ingest" and data.kind == SERVER and not data.parent_span_id
    assert data.attributes["smtp.reply_code"] == 250
    assert data.attributes["mailstream.stream_id"] == auto_replied["stream"]["id"]
    assert data.attributes["mailstream.mail_from_domain"] == "example.net"

    trace = _complete_trace(
        receiver,
        data.trace_id,
        lambda t: (
            _relay_send(t) is not None
            and any(s.name == "process inbox.delivery" for s in t)  # the sent report came back to inbox
            and any(s.name == "process sender.replies" and s.attributes.get("mailstream.outcome") for s in t)
        ),
    )
    assert [s for s in trace if not s.parent_span_id] == [data]  # one root: the DATA command

    relay = _relay_send(trace)
    assert relay.service == "mailstream-sender" and relay.kind == CLIENT
    assert relay.attributes["mailstream.outcome"] == "sent"
    assert relay.attributes["mailstream.rcpt_domains"] == ("example.net",)
    path = list(reversed(_ancestry(relay, trace)))
    hops = [s.name for s in path if s.kind in (PRODUCER, CONSUMER)]
    assert hops == [
        "publish mail.received",
        "process ingest.analyse",
        "publish mail.analysed",
        "process inbox.store",
        "publish message.stored",
        "process automation.evaluate",
        "publish conversation.actions_requested",
        "process inbox.actions",
        "publish reply.requested",
        "process sender.replies",
    ], [s.name for s in path]
    assert [s.service for s in path if s.kind == CONSUMER] == [
        "mailstream-ingest",
        "mailstream-inbox",
        "mailstream-automation",
        "mailstream-inbox",
        "mailstream-sender",
    ]

    # The ids people search by are on the spans of their hop.
    by_name = {s.name: s for s in path}
    conversation_id = auto_replied["conversation"]["id"]
    assert by_name["publish message.stored"].attributes["mailstream.conversation_id"] == conversation_id
    assert by_name["process automation.evaluate"].attributes["mailstream.correlation_id"] == mail_id
    sent = by_name["process sender.replies"].attributes
    assert sent["mailstream.message_id"] == auto_replied["auto_reply"]["id"]
    assert sent["mailstream.conversation_id"] == conversation_id
    assert sent["mailstream.kind"] == "auto_reply"
    assert sent["mailstream.account_id"] == data.attributes["mailstream.account_id"]
    assert all(s.attributes.get("mailstream.outcome") in (None, "ack") for s in trace if s.kind == CONSUMER)
    assert any(
        s.attributes.get("db.system") == "mongodb" or s.attributes.get("db.system.name") == "mongodb" for s in trace
    ), "pymongo's instrumentation puts the store's commands in the trace"

    # Ingest's log line of this mail leads to the trace.
    lines = [
        json.loads(line)
        for line in system.processes["ingest"].log_path.read_text().splitlines()
        if line.startswith("{")
    ]
    [accepted] = [line for line in lines if line.get("message") == "mail accepted" and line.get("mail_id") == mail_id]
    assert accepted["trace_id"] == data.trace_id
    assert accepted["span_id"] == data.span_id


def test_one_agent_reply_is_one_trace_from_the_http_request_to_the_relays_250(
    system: System, receiver: OtlpReceiver, auto_replied: dict
):
    api, conversation = auto_replied["api"], auto_replied["conversation"]
    response = api.post(
        f"/v1/conversations/{conversation['id']}/replies", json={"text": AGENT_TEXT, "apply_template": False}
    )
    assert response.status_code == 202, response.text
    message_id = response.json()["message_id"]
    wait_for_sent(api, conversation["id"], message_id)

    process = wait_for_sync(
        lambda: next(
            (
                s
                for s in receiver.spans()
                if s.name == "process sender.replies" and s.attributes.get("mailstream.message_id") == message_id
            ),
            None,
        ),
        timeout=30,
        what="the sender's span of the agent's reply",
    )
    trace = _complete_trace(receiver, process.trace_id, lambda t: _relay_send(t) is not None)
    [root] = [s for s in trace if not s.parent_span_id]
    assert root.service == "mailstream-inbox" and root.kind == SERVER
    assert root.attributes["http.route"] == "/v1/conversations/{conversation_id}/replies"
    path = list(reversed(_ancestry(_relay_send(trace), trace)))
    assert path[0] == root
    assert [s.name for s in path if s.kind in (PRODUCER, CONSUMER)] == [
        "publish reply.requested",
        "process sender.replies",
    ]
    assert process.attributes["mailstream.kind"] == "reply"
    assert process.attributes["mailstream.conversation_id"] == conversation["id"]
    # Not the inbound mail's trace: one trace per agent reply.
    assert not any(s.name == "smtp DATA" for s in trace)


def test_a_call_the_gateway_forwards_is_one_trace_across_the_gateway_and_the_service(
    receiver: OtlpReceiver, auto_replied: dict
):
    response = auto_replied["api"].get(f"/v1/automation/rules/{auto_replied['rule_id']}")
    assert response.status_code == 200, response.text

    def served():
        return next(
            (
                s
                for s in receiver.spans()
                if s.service == "mailstream-automation"
                and s.kind == SERVER
                and s.attributes.get("http.route", "").endswith("/rules/{rule_id}")
            ),
            None,
        )

    automation = wait_for_sync(served, timeout=30, what="automation's server span of the forwarded call")
    trace = _complete_trace(receiver, automation.trace_id, lambda t: any(not s.parent_span_id for s in t))
    path = list(reversed(_ancestry(automation, trace)))
    assert [(s.service, s.kind) for s in (path[0], path[-2], path[-1])] == [
        ("mailstream-inbox", SERVER),
        ("mailstream-inbox", CLIENT),  # the gateway's httpx call, which carried the traceparent header
        ("mailstream-automation", SERVER),
    ]


def test_no_span_names_a_full_address_or_carries_the_mails_content(receiver: OtlpReceiver, auto_replied: dict):
    forbidden = (
        CUSTOMER[1],
        "orders@traced.test",
        auto_replied["stream"]["forwarding_address"],
        SUBJECT,
        "crushed",
        "We got your refund request",
        AGENT_TEXT,
    )
    spans = receiver.spans()
    assert len(spans) > 50
    for span in spans:
        text = json.dumps([span.name, span.attributes, span.events], default=str)
        leaked = [f for f in forbidden if f.lower() in text.lower()]
        assert not leaked, (leaked, span)
