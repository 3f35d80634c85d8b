"""The pure parts of the history import: reading mbox files and .eml directories, and the event each mail becomes."""

import mailbox
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import pytest

from mailstream_inbox.history_import import (
    HistoryImportError,
    count_mails,
    dedup_key_of,
    parents_of,
    read_mails,
    received_at_of,
    received_event,
)

NOW = datetime(2026, 12, 1, tzinfo=UTC)
STREAM = {
    "_id": "s1",
    "account_id": "a1",
    "address": "support@acme.com",
    "forwarding_address": "s-abc@in.mailstream.test",
}


def mail(message_id: str | None, body: str = "Hello\nFrom the customer\n") -> EmailMessage:
    message = EmailMessage()
    message["From"] = "Ann <ann@example.net>"
    message["Subject"] = "Order"
    message["Date"] = "Tue, 03 Mar 2026 10:30:00 +0100"
    if message_id:
        message["Message-ID"] = message_id
    message.set_content(body)
    return message


def test_an_mbox_yields_each_mail_in_order(tmp_path: Path) -> None:
    box = mailbox.mbox(tmp_path / "a.mbox")
    for index in range(3):
        box.add(mail(f"<m{index}@x>"))
    box.close()
    raws = list(read_mails(tmp_path / "a.mbox"))
    assert count_mails(tmp_path / "a.mbox") == 3
    assert [dedup_key_of(raw) for raw in raws] == ["<m0@x>", "<m1@x>", "<m2@x>"]
    assert b"From the customer" in raws[0]  # mbox's ">From" quoting is undone


def test_a_directory_yields_its_eml_files_by_name(tmp_path: Path) -> None:
    (tmp_path / "b.eml").write_bytes(mail("<b@x>").as_bytes())
    (tmp_path / "a.eml").write_bytes(mail("<a@x>").as_bytes())
    (tmp_path / "notes.txt").write_text("not a mail")
    assert [dedup_key_of(raw) for raw in read_mails(tmp_path)] == ["<a@x>", "<b@x>"]
    assert count_mails(tmp_path) == 2


def test_a_missing_source_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(HistoryImportError):
        list(read_mails(tmp_path / "nothing.mbox"))


def test_without_message_id_the_key_is_the_digest() -> None:
    assert dedup_key_of(mail(None).as_bytes()).startswith("sha256:")


def test_the_date_header_dates_the_mail() -> None:
    assert received_at_of(mail("<a@x>").as_bytes(), NOW) == datetime(2026, 3, 3, 9, 30, tzinfo=UTC)
    assert received_at_of(b"Date: not a date\r\n\r\nx", NOW) == NOW
    assert received_at_of(b"Subject: none\r\n\r\nx", NOW) == NOW


def test_parents_are_in_reply_to_and_references() -> None:
    raw = b"In-Reply-To: <p@x>\r\nReferences: <r@x>\r\n <p@x>\r\n\r\nx"
    assert set(parents_of(raw)) == {"<p@x>", "<r@x>"}
    assert parents_of(b"Subject: x\r\n\r\nx") == []


def test_the_event_is_an_imported_mail_for_the_stream() -> None:
    raw = mail("<a@x>").as_bytes()
    event = received_event(raw, STREAM, NOW)
    assert event.imported is True
    assert event.envelope.mail_from == "ann@example.net"
    assert event.envelope.rcpt_to == [STREAM["forwarding_address"]]
    assert [(t.stream_id, t.account_id, t.stream_address) for t in event.targets] == [("s1", "a1", "support@acme.com")]
    assert event.received_at == datetime(2026, 3, 3, 9, 30, tzinfo=UTC)
    assert received_event(raw, STREAM, NOW).mail_id == event.mail_id  # same bytes, same stream: same mail
    assert received_event(raw, {**STREAM, "_id": "s2"}, NOW).mail_id != event.mail_id
