"""Delivery you can explain (issue 14), end to end: the five services as processes, RabbitMQ, the database, a real
SMTP relay that answers what the test says (`ControllableRelay`), a bounce that comes back over SMTP, the gateway.

- 451 then 250: the timeline shows the attempt with the relay's reply, the deferral with its next attempt time, the
  second attempt, and sent with the relay's own queue id; the live stream carries the same entries.
- A DSN for the sent mail, sent to its VERP address over SMTP, adds a hard bounce with status and diagnostic.
- 550: failed, rejected. Retried through the API (twice at once): one retry, one 409; the same mail (same
  Message-ID, same bytes) reaches the relay exactly once more.
- A suppressed address is marked in the reply preview; `on_suppressed: refuse` answers 422 naming it, `warn`
  queues it with a warning and the timeline says failed: suppressed; the relay never sees it.
"""

import concurrent.futures
from collections.abc import Iterator
from datetime import datetime
from email.message import EmailMessage
from email.utils import make_msgid

import httpx
import pytest

from tests.e2e.conftest import System, running_system
from tests.e2e.scenarios_support import (
    LIVE_ENV,
    EventListener,
    new_account,
    new_stream,
    smtp_send,
    wait_for_conversation,
)
from tests.ingest.fixtures import eml
from tests.support.backends import Backends
from tests.support.controllable_relay import ControllableRelay
from tests.support.waiting import wait_for_sync

pytestmark = pytest.mark.e2e

STREAM_ADDRESS = "help@explain.test"


@pytest.fixture(scope="module")
def relay() -> Iterator[ControllableRelay]:
    relay = ControllableRelay().start()
    yield relay
    relay.stop()


@pytest.fixture(scope="module")
def system(backends: Backends, tmp_path_factory: pytest.TempPathFactory, relay: ControllableRelay) -> Iterator[System]:
    env = {
        "INGEST_AUTH_ENABLED": "false",
        "SENDER_SMTP_HOST": "127.0.0.1",
        "SENDER_SMTP_PORT": str(relay.port),
        "SENDER_RETRY_BASE_SECONDS": "1",
        **LIVE_ENV,
    }
    with running_system(backends, tmp_path_factory, "explain", env) as running:
        yield running


@pytest.fixture(scope="module")
def account(system: System) -> tuple[dict, httpx.Client, dict]:
    created, api = new_account(system, "Explain")
    return created, api, new_stream(api, STREAM_ADDRESS)


def conversation_with(system: System, stream: dict, api: httpx.Client, customer: str, subject: str) -> dict:
    mail = EmailMessage()
    mail["From"] = f"Customer <{customer}>"
    mail["To"] = STREAM_ADDRESS
    mail["Subject"] = subject
    mail["Message-ID"] = make_msgid(domain="example.net")
    mail.set_content("Where is my parcel?")
    smtp_send(system, mail, mail_from=customer, rcpt=stream["forwarding_address"])
    return wait_for_conversation(api, stream["id"], subject)


def queue_reply(api: httpx.Client, conversation_id: str, text: str, **fields) -> httpx.Response:
    return api.post(
        f"/v1/conversations/{conversation_id}/replies", json={"text": text, "apply_template": False, **fields}
    )


def wait_for_delivery(api: httpx.Client, message_id: str, predicate, what: str, timeout: float = 60) -> dict:
    def probe():
        response = api.get(f"/v1/messages/{message_id}/delivery")
        assert response.status_code == 200, response.text
        body = response.json()
        return body if predicate(body) else None

    return wait_for_sync(probe, timeout=timeout, what=what)


def types(delivery: dict) -> list[str]:
    return [entry["type"] for entry in delivery["timeline"]]


def accepted_to(relay: ControllableRelay, address: str):
    accepted, _ = relay.snapshot()
    return [a for a in accepted if address in a.rcpt_tos]


def test_a_deferral_then_sent_and_then_a_hard_bounce_are_each_on_the_timeline_and_the_live_stream(
    system: System, account, relay: ControllableRelay
):
    created, api, stream = account
    customer = "dora@example.net"
    conversation = conversation_with(system, stream, api, customer, "Deferred then sent")
    with EventListener(system, created["api_key"]) as events:
        relay.defer_all("451 4.3.2 System busy, try again later")
        try:
            queued = queue_reply(api, conversation["id"], "It left today.")
            assert queued.status_code == 202, queued.text
            message_id = queued.json()["message_id"]
            deferred = wait_for_delivery(api, message_id, lambda d: "deferred" in types(d), "a deferral")
        finally:
            relay.defer_all(None)
        sent = wait_for_delivery(api, message_id, lambda d: d["status"] == "sent", "sent after the deferral")

        _, live_deferral = events.wait_for(
            lambda name, data: (
                name == "message.delivery_changed"
                and data["message_id"] == message_id
                and any(e["type"] == "deferred" for e in data.get("timeline", []))
            ),
            what="the deferral on the live stream",
        )
        _, live_sent = events.wait_for(
            lambda name, data: (
                name == "message.delivery_changed" and data["message_id"] == message_id and data["status"] == "sent"
            ),
            what="sent on the live stream",
        )
        events.check()

    (mail,) = accepted_to(relay, customer)
    assert types(sent) == ["queued", "attempt", "deferred", "attempt", "sent"]
    first, deferral, second, done = sent["timeline"][1:]
    assert (first["attempt"], first["smtp_code"]) == (1, 451) and "System busy" in first["reply"]
    next_at = datetime.fromisoformat(deferral["next_attempt_at"])
    assert next_at > datetime.fromisoformat(first["at"])
    assert deferred["timeline"][2]["next_attempt_at"] == deferral["next_attempt_at"]
    assert (second["attempt"], second["smtp_code"]) == (2, 250) and mail.queue_id in second["reply"]
    assert done["relay_queue_id"] == mail.queue_id
    assert [e["type"] for e in live_deferral["timeline"]] == ["attempt", "deferred"]
    assert live_deferral["timeline"][1]["next_attempt_at"] == deferral["next_attempt_at"]
    assert [e["type"] for e in live_sent["timeline"]] == ["attempt", "sent"]
    assert live_sent["timeline"][1]["relay_queue_id"] == mail.queue_id
    # The message itself carries the same timeline.
    assert api.get(f"/v1/messages/{message_id}").json()["delivery"]["timeline"] == sent["timeline"]

    # The customer's server bounces it later: a DSN to the VERP address the mail went out with, over SMTP.
    dsn = eml("dsn_bounce_postfix.eml", BOUNCE_ADDRESS=mail.mail_from).replace(
        b"nobody@customer.example", customer.encode()
    )
    smtp_send(system, dsn, mail_from="", rcpt=mail.mail_from)
    bounced = wait_for_delivery(api, message_id, lambda d: "bounced" in types(d), "the bounce")
    assert bounced["status"] == "failed"
    bounce = bounced["timeline"][-1]["bounce"]
    assert (bounce["kind"], bounce["status"], bounce["smtp_code"]) == ("hard", "5.1.1", 550)
    assert "User unknown" in bounce["diagnostic"] and bounce["recipient"] == customer
    # A bounced message is not retried: the remote side said no after the relay took it.
    assert api.post(f"/v1/messages/{message_id}/retry").status_code == 409


def test_a_rejected_reply_fails_and_a_double_retry_sends_the_same_mail_once(
    system: System, account, relay: ControllableRelay
):
    created, api, stream = account
    customer = "rita@example.net"
    conversation = conversation_with(system, stream, api, customer, "Rejected then retried")
    relay.refuse_recipient(customer, "550 5.1.1 <rita@example.net>: mailbox unavailable")
    queued = queue_reply(api, conversation["id"], "Second try will work.")
    assert queued.status_code == 202, queued.text
    message_id = queued.json()["message_id"]
    failed = wait_for_delivery(api, message_id, lambda d: d["status"] == "failed", "failed: rejected")
    assert types(failed) == ["queued", "attempt", "failed"]
    assert failed["timeline"][1]["smtp_code"] == 550 and failed["timeline"][2]["reason"] == "rejected"
    assert accepted_to(relay, customer) == []

    relay.accept_recipient(customer)
    clients = [system.client(created["api_key"]) for _ in range(2)]
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda c: c.post(f"/v1/messages/{message_id}/retry"), clients))
    for client in clients:
        client.close()
    assert sorted(a.status_code for a in answers) == [202, 409], [a.text for a in answers]
    retried = next(a for a in answers if a.status_code == 202).json()
    assert retried["status"] == "queued" and retried["retry_round"] == 1 and types(retried)[-1] == "retried"

    sent = wait_for_delivery(api, message_id, lambda d: d["status"] == "sent", "sent after the retry")
    assert types(sent) == ["queued", "attempt", "failed", "retried", "attempt", "sent"]
    (mail,) = accepted_to(relay, customer)  # exactly one copy reached the relay
    message = api.get(f"/v1/messages/{message_id}").json()
    assert mail.message()["Message-ID"] == message["message_id_header"]
    assert sent["timeline"][-1]["relay_queue_id"] == mail.queue_id
    raw = api.get(f"/v1/messages/{message_id}/raw")
    assert raw.status_code == 200 and raw.content.replace(b"\r\n", b"\n") == mail.data.replace(b"\r\n", b"\n")
    # Sent now: nothing to retry; and another account's key does not even find it.
    assert api.post(f"/v1/messages/{message_id}/retry").status_code == 409
    _, other = new_account(system, "Someone else")
    assert other.post(f"/v1/messages/{message_id}/retry").status_code == 404
    assert other.get(f"/v1/messages/{message_id}/delivery").status_code == 404


def test_a_suppressed_address_is_shown_before_sending_and_refused_or_warned_by_choice(
    system: System, account, relay: ControllableRelay
):
    _, api, stream = account
    customer = "sam@example.net"
    conversation = conversation_with(system, stream, api, customer, "Suppressed customer")
    preview = api.get(f"/v1/conversations/{conversation['id']}/reply-recipients")
    assert preview.status_code == 200, preview.text
    assert [(r["address"], r["suppressed"]) for r in preview.json()["recipients"]] == [(customer, False)]

    added = api.post("/v1/suppressions", json={"address": customer, "reason": "asked us to stop"})
    assert added.status_code == 201, added.text
    (shown,) = api.get(f"/v1/conversations/{conversation['id']}/reply-recipients").json()["recipients"]
    assert (shown["suppressed"], shown["suppression_reason"]) == (True, "asked us to stop")

    refused = queue_reply(api, conversation["id"], "Hello?", on_suppressed="refuse")
    assert refused.status_code == 422, refused.text
    assert [(e["type"], e["input"]) for e in refused.json()["detail"]] == [("suppressed", customer)]

    warned = queue_reply(api, conversation["id"], "Hello anyway?", on_suppressed="warn")
    assert warned.status_code == 202, warned.text
    assert any(customer in w and "suppression list" in w for w in warned.json()["warnings"])
    failed = wait_for_delivery(
        api, warned.json()["message_id"], lambda d: d["status"] == "failed", "failed: suppressed"
    )
    assert types(failed) == ["queued", "failed"] and failed["timeline"][-1]["reason"] == "suppressed"
    assert accepted_to(relay, customer) == []
