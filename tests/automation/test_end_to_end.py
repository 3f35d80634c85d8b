"""Automation through the real system: a rule made over the gateway tags and auto-replies to real SMTP mail once,
and holds the auto-reply back for automatic mail, with the reasons readable in the runs."""

import dataclasses
import smtplib
from collections.abc import Iterator
from email.message import EmailMessage
from email.utils import make_msgid

import pytest

from tests.e2e import conftest as e2e
from tests.e2e.conftest import System, wait_for_json
from tests.support.backends import Backends, _vhost
from tests.support.waiting import wait_for_sync

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def system(backends: Backends, tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    """The e2e suite's system, on a RabbitMQ vhost and a database of its own: work still queued when this module
    ends (an auto-reply waiting for a retry, say) dies with the vhost instead of reaching the next module's relay."""
    with _vhost(backends.amqp_url) as amqp_url:
        isolated = dataclasses.replace(backends, amqp_url=amqp_url, database=f"{backends.database}_automation")
        yield from e2e.system.__wrapped__(isolated, tmp_path_factory)


def send(mailstream: System, to: str, subject: str, sender: str = "kana@example.net", **headers: str) -> str:
    mail = EmailMessage()
    mail["From"] = f"Kana Customer <{sender}>"
    mail["To"] = "support@acme.test"
    mail["Subject"] = subject
    mail["Message-ID"] = make_msgid(domain="example.net")
    for name, value in headers.items():
        mail[name.replace("_", "-")] = value
    mail.set_content("Hello, order 1234 arrived broken.")
    with smtplib.SMTP("127.0.0.1", mailstream.smtp_port, timeout=30) as smtp:
        assert smtp.send_message(mail, from_addr=sender, to_addrs=[to]) == {}
    return mail["Message-ID"]


def test_a_rule_tags_and_auto_replies_once_and_never_to_robots(system: System):
    account = system.cli("accounts", "create", "--name", "Automation Co")
    api = system.client(account["api_key"])
    topic = api.post("/v1/topics", json={"name": "Support"}).json()
    stream = api.post(
        f"/v1/topics/{topic['id']}/streams", json={"address": "support@acme.test", "allow_agent_send": True}
    ).json()
    canned = api.post(
        "/v1/canned-responses", json={"title": "Ack", "text": "Thanks {{ customer.name }}, we are on it."}
    )
    assert canned.status_code == 201, canned.text
    created = api.post(
        "/v1/automation/rules",
        json={
            "name": "Refunds",
            "conditions": [{"field": "subject", "operator": "contains", "value": "refund"}],
            "actions": [
                {"type": "add_tags", "tags": ["refund"]},
                {"type": "set_priority", "priority": "high"},
                {"type": "auto_reply", "canned_response_id": canned.json()["id"], "apply_template": False},
            ],
        },
    )
    assert created.status_code == 201, created.text
    rule = created.json()

    send(system, stream["forwarding_address"], "Refund please")
    conversation = wait_for_json(
        api,
        "/v1/conversations",
        lambda body: body["items"] and body["items"][0].get("tags") == ["refund"],
        timeout=60,
        what="the tagged conversation",
    )["items"][0]
    assert conversation["priority"] == "high"

    def outbound() -> list[dict]:
        items = api.get(f"/v1/conversations/{conversation['id']}/messages").json()["items"]
        return [m for m in items if m["direction"] == "outbound"]

    [reply] = wait_for_sync(outbound, timeout=60, what="the auto-reply in the conversation")
    assert "Thanks Kana Customer, we are on it." in reply["text"]

    # The same customer again, and a robot: both fire the rule, neither gets an auto-reply.
    send(system, stream["forwarding_address"], "Re: Refund please")
    send(
        system,
        stream["forwarding_address"],
        "Refund (automatic)",
        sender="robot@example.org",
        Auto_Submitted="auto-generated",
    )
    runs = wait_for_json(
        api,
        f"/v1/automation/rules/{rule['id']}/runs",
        lambda body: len(body["items"]) == 3 and all(r["published"] for r in body["items"]),
        timeout=60,
        what="three published runs",
    )["items"]
    reasons = sorted(r["skipped_actions"][0]["reason"].split(":")[0] for r in runs if r["skipped_actions"])
    assert reasons == ["auto_submitted", "rate_limited"]
    assert all(r["fired"] for r in runs)
    assert runs[-1]["matched_conditions"][0]["why"] == 'subject "Refund please" contains "refund"'
    assert len(outbound()) == 1

    agent_key = api.post("/v1/api-keys", json={"role": "agent", "name": "ann"}).json()["api_key"]
    agent = system.client(agent_key)
    assert agent.get(f"/v1/automation/rules/{rule['id']}").status_code == 200
    assert agent.delete(f"/v1/automation/rules/{rule['id']}").status_code == 403
