"""Quiet history import, end to end: `mailstream import` (a real CLI process) and `POST /v1/streams/{id}/import`
bring old mail into a stream through ingest and inbox (real processes, RabbitMQ, the database). The mails thread
like live mail, keep their dates, run no automation (a live mail afterwards proves the rule works), send no
auto-reply, reach live clients as `message.imported`, and importing the same mailbox twice changes nothing."""

import mailbox
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest

from tests.e2e.conftest import System, running_system, wait_for_json
from tests.e2e.scenarios_support import (
    LIVE_ENV,
    EventListener,
    conversations_of,
    messages_of,
    new_account,
    new_stream,
    relay_mail_to,
    smtp_send,
)
from tests.support.backends import Backends
from tests.support.waiting import wait_for_sync

pytestmark = pytest.mark.e2e

CUSTOMER = "ola@example.net"


@pytest.fixture(scope="module")
def system(backends: Backends, tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    with running_system(backends, tmp_path_factory, "import", LIVE_ENV) as running:
        yield running


def old_mail(message_id: str, subject: str, date: str, body: str, *, in_reply_to: str | None = None) -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = f"Ola Customer <{CUSTOMER}>"
    mail["To"] = "history@import.test"
    mail["Subject"] = subject
    mail["Date"] = date
    mail["Message-ID"] = message_id
    if in_reply_to:
        mail["In-Reply-To"] = in_reply_to
        mail["References"] = in_reply_to
    mail.set_content(body)
    return mail


def write_mbox(path: Path, mails: list[EmailMessage]) -> Path:
    box = mailbox.mbox(path)
    for mail in mails:
        box.add(mail)
    box.flush()
    box.close()
    return path


def test_import_threads_quietly_and_twice_is_once(system: System, tmp_path: Path) -> None:
    account, api = new_account(system, "Import Co")
    stream = new_stream(api, "history@import.test")
    rule = api.post(
        "/v1/automation/rules",
        json={
            "name": "Tag orders",
            "conditions": [{"field": "subject", "operator": "contains", "value": "order"}],
            "actions": [{"type": "add_tags", "tags": ["orders"]}],
        },
    )
    assert rule.status_code == 201, rule.text
    mbox = write_mbox(
        tmp_path / "history.mbox",
        [
            old_mail("<a1@old.example.net>", "My order 7 is late", "Mon, 02 Mar 2026 08:00:00 +0000", "Late."),
            old_mail(
                "<a2@old.example.net>",
                "Re: My order 7 is late",
                "Tue, 03 Mar 2026 08:00:00 +0000",
                "Still late.",
                in_reply_to="<a1@old.example.net>",
            ),
            old_mail("<b1@old.example.net>", "Invoice for order 8", "Wed, 04 Mar 2026 08:00:00 +0000", "Invoice?"),
        ],
    )

    with EventListener(system, account["api_key"]) as live:
        summary = system.cli("import", "--stream", stream["id"], str(mbox))
        assert summary == {"stream_id": stream["id"], "total": 3, "queued": 3, "already_imported": 0, "too_large": 0}
        page = wait_for_json(
            api,
            f"/v1/conversations?stream_id={stream['id']}",
            lambda p: sum(c["message_count"] for c in p["items"]) == 3,
            what="three imported messages",
        )
        live.wait_for(lambda name, data: name == "message.imported" and data["imported"], what="message.imported")
        assert not [name for name, _ in live.events if name == "message.received"]
        live.check()

    by_subject = {c["subject"]: c for c in page["items"]}
    assert set(by_subject) == {"My order 7 is late", "Invoice for order 8"}
    assert by_subject["My order 7 is late"]["message_count"] == 2  # the reply threaded on its In-Reply-To
    late = messages_of(api, by_subject["My order 7 is late"]["id"])
    assert [m["message_id_header"] for m in late] == ["<a1@old.example.net>", "<a2@old.example.net>"]
    assert all(m["imported"] for m in late)
    assert late[0]["created_at"].startswith("2026-03-02T08:00:00")  # history keeps its dates

    # Twice is once: the CLI skips what is stored, the API answers already_imported, and nothing changes.
    again = system.cli("import", "--stream", stream["id"], str(mbox))
    assert again["queued"] == 0 and again["already_imported"] == 3
    one_eml = mailbox.mbox(mbox).get_bytes(0)
    repeated = api.post(
        f"/v1/streams/{stream['id']}/import", content=one_eml, headers={"Content-Type": "message/rfc822"}
    )
    assert repeated.status_code == 202 and repeated.json()["status"] == "already_imported", repeated.text

    # One more old mail over the API, then a live one: the rule fires for the live mail only.
    new_eml = old_mail("<c1@old.example.net>", "Order 9 question", "Thu, 05 Mar 2026 08:00:00 +0000", "Hm.")
    queued = api.post(
        f"/v1/streams/{stream['id']}/import", content=new_eml.as_bytes(), headers={"Content-Type": "message/rfc822"}
    )
    assert queued.status_code == 202 and queued.json()["status"] == "queued", queued.text
    live_mail = old_mail("<live1@example.net>", "Live order 10", "Fri, 06 Mar 2026 08:00:00 +0000", "Now.")
    smtp_send(system, live_mail, mail_from=CUSTOMER, rcpt=stream["forwarding_address"])
    wait_for_json(
        api,
        f"/v1/conversations?stream_id={stream['id']}",
        lambda p: (
            any(c["subject"] == "Live order 10" and "orders" in c["tags"] for c in p["items"])
            and sum(c["message_count"] for c in p["items"]) == 5
        ),
        what="the API-imported mail stored and the live mail tagged by the rule",
    )
    conversations = conversations_of(api, stream["id"])
    assert sum(c["message_count"] for c in conversations) == 5
    tagged = sorted(c["subject"] for c in conversations if "orders" in c["tags"])
    assert tagged == ["Live order 10"], tagged  # no imported conversation was touched by the rule
    runs = wait_for_sync(
        lambda: api.get(f"/v1/automation/rules/{rule.json()['id']}").json()["fired_count"] or None,
        timeout=10,
        what="the live mail's rule run",
    )
    assert runs == 1
    assert relay_mail_to(system, CUSTOMER) == []


def test_import_of_another_accounts_stream_is_404(system: System) -> None:
    _, owner = new_account(system, "Owner")
    stream = new_stream(owner, "owner@import.test")
    _, other = new_account(system, "Other")
    response = other.post(
        f"/v1/streams/{stream['id']}/import",
        content=b"Subject: x\r\n\r\nx\r\n",
        headers={"Content-Type": "message/rfc822"},
    )
    assert response.status_code == 404
