"""One mail the whole way, through the real processes: CLI account, API stream, SMTP in, conversation over HTTP,
an agent's reply out through the relay, and the delivery result back on the message."""

import smtplib
from email.message import EmailMessage
from email.utils import make_msgid

import pytest

from tests.e2e.conftest import System, wait_for_json
from tests.support.waiting import wait_for_sync

pytestmark = pytest.mark.e2e


def test_a_mail_travels_in_and_a_reply_goes_out(system: System):
    account = system.cli("accounts", "create", "--name", "Acme")
    assert set(account) >= {"account_id", "api_key"}
    api = system.client(account["api_key"])

    topic = api.post("/v1/topics", json={"name": "Support"})
    assert topic.status_code == 201, topic.text
    stream = api.post(
        f"/v1/topics/{topic.json()['id']}/streams", json={"address": "support@acme.test", "allow_agent_send": True}
    )
    assert stream.status_code == 201, stream.text
    stream = stream.json()
    assert stream["status"] == "awaiting_mail"
    assert stream["forwarding_address"].endswith("@in.mailstream.test")

    mail = EmailMessage()
    mail["From"] = "Kana Customer <kana@example.net>"
    mail["To"] = "support@acme.test"
    mail["Subject"] = "My order has not arrived"
    mail["Message-ID"] = make_msgid(domain="example.net")
    mail.set_content("Hello, order 1234 has not arrived yet.")
    with smtplib.SMTP("127.0.0.1", system.smtp_port, timeout=30) as smtp:
        refused = smtp.send_message(mail, from_addr="kana@example.net", to_addrs=[stream["forwarding_address"]])
    assert refused == {}

    listing = wait_for_json(api, "/v1/conversations", lambda body: body["items"], what="the conversation")
    conversation = listing["items"][0]
    assert conversation["subject"] == "My order has not arrived"
    assert conversation["customer"]["address"] == "kana@example.net"
    assert conversation["stream_id"] == stream["id"]

    messages = api.get(f"/v1/conversations/{conversation['id']}/messages").json()["items"]
    assert [m["direction"] for m in messages] == ["inbound"]
    assert "order 1234" in messages[0]["text"]
    assert messages[0]["message_id_header"] == mail["Message-ID"]
    assert (
        api.get(f"/v1/messages/{messages[0]['id']}/raw")
        .content.replace(b"\r\n", b"\n")
        .startswith(b"From: Kana Customer")
    )
    assert wait_for_json(api, f"/v1/streams/{stream['id']}", lambda s: s["status"] == "receiving")

    reply = api.post(
        f"/v1/conversations/{conversation['id']}/replies",
        json={"text": "Sorry! It ships today.", "apply_template": False},
    )
    assert reply.status_code == 202, reply.text
    assert reply.json()["status"] == "queued"

    def delivered():
        items = api.get(f"/v1/conversations/{conversation['id']}/messages").json()["items"]
        outbound = [m for m in items if m["direction"] == "outbound"]
        return outbound and outbound[0]["delivery"] and outbound[0]["delivery"]["status"] == "sent"

    wait_for_sync(delivered, timeout=30, what="delivery status 'sent' on the reply")

    sent = system.relay.messages()
    assert len(sent) == 1
    out = sent[0]
    assert out["To"].addresses[0].addr_spec == "kana@example.net"
    assert out["Subject"] == "Re: My order has not arrived"
    assert out["In-Reply-To"] == mail["Message-ID"]
    assert "It ships today" in out.get_body(("plain",)).get_content()


def test_every_service_drains_and_exits_cleanly_on_sigterm(system: System):
    """What Kubernetes does on a rollout: SIGTERM, then wait. Each service finishes and exits 0 (last in module)."""
    for process in system.processes.values():
        process.request_stop()
    codes = {name: process.stop(timeout=30) for name, process in system.processes.items()}
    assert codes == dict.fromkeys(system.processes, 0), f"{codes}\n{system.logs()}"
