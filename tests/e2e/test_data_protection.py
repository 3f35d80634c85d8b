"""Data protection end to end (issue 17), through real SMTP, RabbitMQ, the database and HTTP.

- An address erased after mail in (with an attachment), an auto-reply (a rule), an agent's reply out and a bounce
  of it (suppressing the address) leaves no document in any collection of the database that contains the address
  (scanned as raw BSON, case-insensitively), nor a line in any service's log; a conversation in which another
  person remains keeps that person's message; another person's conversation is untouched; the request's progress
  shows each service's counts; another account's request id is 404; asking again while nothing is left finishes.
- An erasure requested while sender is dead (kill -9) waits for sender's part and finishes after its restart.
- Retention erases the conversations past the account's window, and only those.
- An export holds exactly the person's messages (mbox) and records (JSON), and is downloaded once.
"""

import io
import json
import mailbox
import re
import smtplib
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path

import httpx
import pytest
from bson.raw_bson import RawBSONDocument
from pymongo import MongoClient

from tests.e2e.conftest import System, running_system, wait_for_json
from tests.e2e.scenarios_support import (
    messages_of,
    new_account,
    new_stream,
    relay_dumps,
    reply,
    sink_envelope,
    smtp_send,
    wait_for_conversation,
    wait_for_sent,
)
from tests.support.backends import Backends
from tests.support.waiting import wait_for_sync

pytestmark = pytest.mark.e2e

ANN = "Ann.Erasure@Privacy-E2E.example"  # mixed case on purpose: erasure and the scan compare case-insensitively
BOB = "bob.stays@privacy-e2e.example"
CARL = "carl.other@privacy-e2e.example"
SUPPORT = "help@privacy-shop.test"
DSN_FIXTURE = Path(__file__).parents[1] / "fixtures" / "mail" / "dsn_bounce_postfix.eml"


@pytest.fixture(scope="module")
def system(backends: Backends, tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    env = {
        "INGEST_AUTH_ENABLED": "false",
        "SENDER_SUPPRESS_AFTER_HARD_BOUNCES": "1",
        "INBOX_RETENTION_RUN_SECONDS": "1",
        "INBOX_DATA_REQUEST_RELAY_SECONDS": "1",
    }
    with running_system(backends, tmp_path_factory, "privacy", env) as running:
        running.mongodb_uri = backends.mongodb_uri  # type: ignore[attr-defined]
        yield running


def mail(
    sender: str, subject: str, text: str, *, cc: str | None = None, in_reply_to: str | None = None
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = SUPPORT
    if cc:
        message["Cc"] = cc
    message["Subject"] = subject
    message["Message-ID"] = make_msgid(domain="privacy-e2e.example")
    if in_reply_to:
        message["In-Reply-To"] = in_reply_to
        message["References"] = in_reply_to
    message.set_content(text)
    return message


def documents_naming(system: System, address: str) -> list[str]:
    """`collection: _id` of every document in the system's database whose BSON bytes contain `address`."""
    needle = address.lower().encode()
    client: MongoClient = MongoClient(system.mongodb_uri, document_class=RawBSONDocument)  # type: ignore[attr-defined]
    try:
        db = client[system.env["MONGODB_DATABASE"]]
        found = []
        for name in db.list_collection_names():
            for doc in db[name].find({}):
                if needle in doc.raw.lower():
                    found.append(f"{name}: {doc.get('_id')}")
        return found
    finally:
        client.close()


def log_lines_naming(system: System, address: str) -> list[str]:
    pattern = re.compile(re.escape(address), re.IGNORECASE)
    return [
        f"{name}: {line}"
        for name, process in system.processes.items()
        for line in process.log_path.read_text(errors="replace").splitlines()
        if pattern.search(line)
    ]


def wait_done(api, request_id: str, *, timeout: float = 60) -> dict:
    return wait_for_json(
        api, f"/v1/data-requests/{request_id}", lambda r: r["status"] == "done", timeout=timeout, what="erasure done"
    )


def bounce(system: System, outbound_header: str, recipient: str) -> None:
    """A DSN for the mail at the relay with this Message-ID, sent back to its VERP address like a remote MTA would."""
    dump = next(d for d in relay_dumps(system) if outbound_header.encode() in d)
    verp = sink_envelope(dump, b"X-Mail-Args").partition("<")[2].partition(">")[0]
    dsn = DSN_FIXTURE.read_bytes().replace(b"BOUNCE_ADDRESS", verp.encode())
    dsn = dsn.replace(b"nobody@customer.example", recipient.encode())
    with smtplib.SMTP("127.0.0.1", system.smtp_port, timeout=30) as smtp:
        assert smtp.sendmail("", [verp], dsn) == {}


def test_an_erased_address_leaves_nothing_in_any_collection_or_log(system: System):
    _, api = new_account(system, "Privacy")
    stream = new_stream(api, SUPPORT, display_name="Privacy Shop")
    canned = api.post("/v1/canned-responses", json={"title": "Got it", "text": "Hello {{ customer.name }}, got it."})
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

    # Ann writes in (with an attachment): the rule auto-replies, an agent replies, the reply bounces.
    first = mail(f"Ann Erasure <{ANN}>", "Refund for order 77", "Please refund order 77.")
    first.add_attachment(b"receipt of Ann", maintype="application", subtype="octet-stream", filename="receipt.bin")
    smtp_send(system, first, mail_from=ANN, rcpt=stream["forwarding_address"])
    ann_conversation = wait_for_conversation(api, stream["id"], "Refund for order 77")
    auto = wait_for_sync(
        lambda: next((m for m in messages_of(api, ann_conversation["id"]) if m["direction"] == "outbound"), None),
        timeout=30,
        what="the auto-reply",
    )
    wait_for_sent(api, ann_conversation["id"], auto["id"])
    agent_reply = reply(api, ann_conversation["id"], "We are on it.")
    bounce(system, agent_reply["message_id_header"], ANN.lower())
    wait_for_json(
        api,
        f"/v1/suppressions/{ANN.lower()}",
        lambda body: body.get("address") == ANN.lower(),
        what="Ann suppressed after the bounce",
    )

    # Bob opens a conversation; Ann answers in it with Bob on Cc: Bob's message must stay after the erasure.
    bob_first = mail(f"Bob Stays <{BOB}>", "Team order", "Order for the team.")
    smtp_send(system, bob_first, mail_from=BOB, rcpt=stream["forwarding_address"])
    bob_conversation = wait_for_conversation(api, stream["id"], "Team order")
    smtp_send(
        system,
        mail(ANN, "Re: Team order", "Add one for me.", cc=BOB, in_reply_to=bob_first["Message-ID"]),
        mail_from=ANN,
        rcpt=stream["forwarding_address"],
    )
    wait_for_json(
        api, f"/v1/conversations/{bob_conversation['id']}", lambda c: c["message_count"] == 2, what="Ann's answer"
    )
    # Carl, who never met Ann.
    smtp_send(system, mail(CARL, "Carl's question", "Hello?"), mail_from=CARL, rcpt=stream["forwarding_address"])
    carl_conversation = wait_for_conversation(api, stream["id"], "Carl's question")
    assert documents_naming(system, ANN), "the scenario stored nothing about Ann: the scan would prove nothing"

    # Agents may not erase; another account cannot see the request.
    agent_key = api.post("/v1/api-keys", json={"role": "agent", "name": "agent"}).json()["api_key"]
    assert system.client(agent_key).post("/v1/data-requests", json={"type": "erase", "address": ANN}).status_code == 403
    created = api.post("/v1/data-requests", json={"type": "erase", "address": ANN})
    assert created.status_code in (200, 201), created.text
    request_id = created.json()["id"]
    assert ANN.lower() not in created.text.lower()
    _, other_api = new_account(system, "Someone else")
    assert other_api.get(f"/v1/data-requests/{request_id}").status_code == 404

    done = wait_done(api, request_id)
    parts = {p["service"]: p for p in done["services"]}
    assert set(parts) == {"ingest", "inbox", "automation", "sender", "domains"}
    assert all(p["status"] == "done" for p in parts.values())
    assert parts["inbox"]["counts"]["messages"] == 4  # Ann's mail, the auto-reply, the agent's reply, her answer
    assert parts["inbox"]["counts"]["conversations_deleted"] == 1
    assert parts["inbox"]["counts"]["conversations_kept"] == 1
    assert parts["automation"]["counts"]["runs"] >= 1
    assert parts["sender"]["counts"]["deliveries"] == 2 and parts["sender"]["counts"]["suppressions"] == 1
    assert done["address_domain"] == "privacy-e2e.example"

    assert documents_naming(system, ANN) == []
    assert log_lines_naming(system, ANN) == []
    assert api.get(f"/v1/conversations/{ann_conversation['id']}").status_code == 404
    kept = api.get(f"/v1/conversations/{bob_conversation['id']}").json()
    assert kept["message_count"] == 1 and kept["customer"]["address"] == BOB
    assert kept["participants"] == [BOB]
    assert [m["from"]["address"] for m in messages_of(api, bob_conversation["id"])] == [BOB]
    assert api.get(f"/v1/conversations/{carl_conversation['id']}").json()["message_count"] == 1
    assert api.get(f"/v1/suppressions/{ANN.lower()}").status_code == 404

    # Asking again: nothing is left to remove, and the request still finishes.
    again = api.post("/v1/data-requests", json={"type": "erase", "address": ANN.upper()})
    assert again.status_code == 201, again.text
    again_done = wait_done(api, again.json()["id"])
    assert {p["service"]: p["counts"] for p in again_done["services"]}["inbox"]["messages"] == 0
    listed = api.get("/v1/data-requests").json()["items"]
    assert [r["id"] for r in listed][:2] == [again.json()["id"], request_id]


def test_an_erasure_waits_for_a_killed_service_and_finishes_after_its_restart(system: System):
    _, api = new_account(system, "Privacy crash")
    stream = new_stream(api, "crash@privacy-shop.test")
    dana = "dana.crash@privacy-e2e.example"
    smtp_send(system, mail(dana, "Crash question", "Hi."), mail_from=dana, rcpt=stream["forwarding_address"])
    conversation = wait_for_conversation(api, stream["id"], "Crash question")
    reply(api, conversation["id"], "Hello Dana.")

    sender = system.processes["sender"]
    sender.kill()  # kill -9: no graceful shutdown
    try:
        created = api.post("/v1/data-requests", json={"type": "erase", "address": dana})
        assert created.status_code == 201, created.text
        request_id = created.json()["id"]
        waiting = wait_for_json(
            api,
            f"/v1/data-requests/{request_id}",
            lambda r: sum(p["status"] == "done" for p in r["services"]) == 4,
            what="every part but sender's",
        )
        assert waiting["status"] == "running"
        assert {p["service"] for p in waiting["services"] if p["status"] == "pending"} == {"sender"}
    finally:
        sender.start(timeout=120)
    done = wait_done(api, request_id)
    assert {p["service"]: p["counts"] for p in done["services"]}["sender"]["deliveries"] == 1
    assert documents_naming(system, dana) == []


def test_an_erasure_survives_a_kill_of_the_tracking_inbox_right_after_the_request(system: System):
    """Inbox is killed (-9) the moment it answered: wherever its own part and its recording of the reports were,
    after the restart the broker redelivers what it had not acknowledged and the request finishes clean."""
    _, api = new_account(system, "Privacy inbox crash")
    stream = new_stream(api, "inbox-crash@privacy-shop.test")
    gil = "gil.crash@privacy-e2e.example"
    for n in range(3):
        smtp_send(system, mail(gil, f"Gil {n}", "Hi."), mail_from=gil, rcpt=stream["forwarding_address"])
        wait_for_conversation(api, stream["id"], f"Gil {n}")
    created = api.post("/v1/data-requests", json={"type": "erase", "address": gil})
    assert created.status_code == 201, created.text
    inbox = system.processes["inbox"]
    inbox.kill()
    inbox.start(timeout=120)
    done = wait_done(api, created.json()["id"])
    assert all(p["status"] == "done" for p in done["services"])
    assert api.get(f"/v1/conversations?stream_id={stream['id']}").json()["items"] == []
    assert documents_naming(system, gil) == []


def imported(api, stream_id: str, sender: str, subject: str, when: datetime) -> None:
    message = mail(sender, subject, "From the archive.")
    message.replace_header("To", "retention@privacy-shop.test")
    message["Date"] = format_datetime(when)
    response = api.post(
        f"/v1/streams/{stream_id}/import", content=message.as_bytes(), headers={"Content-Type": "message/rfc822"}
    )
    assert response.status_code in (201, 202), response.text


def test_retention_erases_only_conversations_past_the_window(system: System):
    _, api = new_account(system, "Privacy retention")
    stream = new_stream(api, "retention@privacy-shop.test")
    now = datetime.now(UTC)
    old_sender, recent_sender = "old.customer@privacy-e2e.example", "recent.customer@privacy-e2e.example"
    imported(api, stream["id"], old_sender, "Old order", now - timedelta(days=400))
    imported(api, stream["id"], recent_sender, "Recent order", now - timedelta(days=300))
    old = wait_for_conversation(api, stream["id"], "Old order")
    recent = wait_for_conversation(api, stream["id"], "Recent order")
    assert api.get("/v1/retention").json() == {"messages_days": None}

    assert api.put("/v1/retention", json={"messages_days": 0}).status_code == 422
    assert api.put("/v1/retention", json={"messages_days": 365}).json() == {"messages_days": 365}
    wait_for_sync(
        lambda: api.get(f"/v1/conversations/{old['id']}").status_code == 404, timeout=60, what="the old one erased"
    )
    finished = wait_for_json(
        api,
        "/v1/data-requests",
        lambda page: any(r["type"] == "retention" and r["status"] == "done" for r in page["items"]),
        what="the retention request done",
    )
    [retention] = [r for r in finished["items"] if r["type"] == "retention"]
    assert {p["service"]: p["counts"] for p in retention["services"]}["inbox"]["conversations_deleted"] == 1
    assert api.get(f"/v1/conversations/{recent['id']}").json()["message_count"] == 1
    assert documents_naming(system, old_sender) == []
    assert documents_naming(system, recent_sender) != []
    metrics = httpx.get(f"{system.gateway}/metrics").text
    assert 'mailstream_inbox_retention_removed_total{kind="messages",service="inbox"} 1.0' in metrics


def test_an_export_holds_exactly_the_persons_messages_and_records_and_is_downloaded_once(system: System, tmp_path):
    _, api = new_account(system, "Privacy export")
    stream = new_stream(api, "export@privacy-shop.test")
    eve, frank = "eve.export@privacy-e2e.example", "frank.other@privacy-e2e.example"
    first = mail(eve, "Export one", "First of Eve.")
    first.add_attachment(b"Eve's file", maintype="application", subtype="octet-stream", filename="eve.bin")
    smtp_send(system, first, mail_from=eve, rcpt=stream["forwarding_address"])
    smtp_send(system, mail(frank, "Frank's own", "Not Eve."), mail_from=frank, rcpt=stream["forwarding_address"])
    second = mail(eve, "Export two", "Plain.")
    # As raw bytes: a body line starting with "From " exactly as sent (a generator would quote it itself).
    raw_second = second.as_bytes().replace(b"Plain.", b"From the start of a line.")
    smtp_send(system, raw_second, mail_from=eve, rcpt=stream["forwarding_address"])
    conversation = wait_for_conversation(api, stream["id"], "Export one")
    wait_for_conversation(api, stream["id"], "Export two")
    wait_for_conversation(api, stream["id"], "Frank's own")
    sent = reply(api, conversation["id"], "Here is your answer, Eve.")

    created = api.post("/v1/data-requests", json={"type": "export", "address": eve.upper()})
    assert created.status_code == 201, created.text
    request_id = created.json()["id"]
    done = wait_done(api, request_id)
    assert done["type"] == "export" and done["archive"]["state"] == "ready"
    _, other_api = new_account(system, "Export stranger")
    assert other_api.get(f"/v1/data-requests/{request_id}/archive").status_code == 404

    download = api.get(done["archive"]["download_url"])
    assert download.status_code == 200 and download.headers["content-type"] == "application/zip"
    assert api.get(done["archive"]["download_url"]).status_code == 410  # once only
    assert api.get(f"/v1/data-requests/{request_id}").json()["archive"]["state"] == "downloaded"

    with zipfile.ZipFile(io.BytesIO(download.content)) as archive:
        (tmp_path / "messages.mbox").write_bytes(archive.read("messages.mbox"))
        records = json.loads(archive.read("records.json"))["records"]
    box = mailbox.mbox(tmp_path / "messages.mbox")
    ids = sorted(message["Message-ID"] for message in box)
    assert ids == sorted([first["Message-ID"], second["Message-ID"], sent["message_id_header"]])
    body = next(m for m in box if m["Message-ID"] == second["Message-ID"]).get_payload(decode=True)
    assert body.startswith(b">From the start of a line.")  # mboxrd quoting: a reader that knows it undoes it
    exported = {m["_id"] for m in records["inbox"]["messages"]}
    assert len(exported) == 3
    assert [d["_id"] for d in records["sender"]["deliveries"]] == [sent["id"]]
    assert frank not in json.dumps(records)
    assert documents_naming(system, eve) != []  # an export erases nothing
    assert [c["_id"] for c in records["inbox"]["conversations"]] != []
