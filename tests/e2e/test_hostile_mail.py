"""Nasty mails through real SMTP into the running system: each is accepted and stored with a recorded warning and its
raw bytes kept, or refused with a clear SMTP error; an encoded CR/LF in a Subject or From name is stored on one line
and nothing of it becomes a header of the agent's reply at the relay.

The system runs with INGEST_MAX_MESSAGE_BYTES raised to 40 MiB so that the 25 MB attachment (about 34 MB on the wire
in base64) is accepted; at the default limit (25 MiB) it is refused 552 (tests/ingest/smtp/test_hostile_sizes.py).
"""

import smtplib
import uuid

import pytest

from tests.e2e.conftest import System, running_system
from tests.e2e.scenarios_support import (
    conversations_of,
    messages_of,
    new_account,
    new_stream,
    parse,
    relay_dumps,
    reply,
    sink_envelope,
    strip_sink_headers,
)
from tests.support import hostile_mail
from tests.support.waiting import wait_for_sync

pytestmark = pytest.mark.e2e

RAISED_LIMIT = 40 * 1024 * 1024
STORE_TIMEOUT = 120  # the 25 MB case crosses ingest, the broker and inbox's blob store on a shared 2-core machine
# In a service's deeper call stack the parser may give up on the 200-level chain sooner (same warning family).
ALSO_ACCEPTED = {"200 nested message/rfc822": {"MIME defect: NestingTooDeepDefect"}}


@pytest.fixture(scope="module")
def system(backends, tmp_path_factory):
    env = {"INGEST_MAX_MESSAGE_BYTES": str(RAISED_LIMIT)}
    with running_system(backends, tmp_path_factory, "hostile", env) as running:
        yield running


@pytest.fixture(scope="module")
def inbox(system: System):
    _, api = new_account(system, "Hostile")
    stream = new_stream(api, "support@acme.test")
    return api, stream


def deliver(system: System, rcpt: str, raw: bytes) -> tuple[int, bytes]:
    """One SMTP transaction; the reply to the end of DATA (or the refusal that stopped it)."""
    with smtplib.SMTP("127.0.0.1", system.smtp_port, timeout=300) as smtp:
        smtp.ehlo("hostile.example")
        smtp.mail("attacker@hostile.example")
        code, message = smtp.rcpt(rcpt)
        assert code == 250, message
        try:
            return smtp.data(raw)
        except smtplib.SMTPDataError as refused:
            return refused.smtp_code, refused.smtp_error


def find_message(api, stream_id: str, message_id_header: str) -> dict:
    def probe():
        for conversation in conversations_of(api, stream_id):
            for message in messages_of(api, conversation["id"]):
                if message["message_id_header"] == message_id_header:
                    return message
        return None

    return wait_for_sync(probe, timeout=STORE_TIMEOUT, interval=0.5, what=f"message {message_id_header}")


@pytest.mark.parametrize("case", [c for c in hostile_mail.CASES if c != "encoded CR/LF in headers"])
def test_a_nasty_mail_is_stored_with_a_warning_and_its_raw_kept(system: System, inbox, case):
    api, stream = inbox
    message_id_header = f"<{uuid.uuid4().hex}@hostile.example>"
    raw = f"Message-ID: {message_id_header}\r\n".encode() + hostile_mail.CASES[case]()
    code, reply_text = deliver(system, stream["forwarding_address"], raw)
    assert code == 250 and b"queued as" in reply_text, (code, reply_text)

    message = find_message(api, stream["id"], message_id_header)
    expected = hostile_mail.EXPECTED_WARNING[case]
    if expected is not None:
        accepted = {expected, *ALSO_ACCEPTED.get(case, ())}
        assert accepted & set(message["parse_warnings"]), message["parse_warnings"]
    assert not any(c in message["subject"] for c in "\r\n\x00")
    stored_raw = api.get(f"/v1/messages/{message['id']}/raw", timeout=120)
    assert stored_raw.status_code == 200
    assert stored_raw.content == raw  # the exact bytes received


def test_a_header_line_over_the_line_limit_and_a_mail_over_the_size_limit_are_refused_clearly(system: System, inbox):
    _, stream = inbox
    code, text = deliver(system, stream["forwarding_address"], hostile_mail.huge_header_line(folded=False))
    assert code == 500 and b"Line too long" in text
    code, text = deliver(system, stream["forwarding_address"], hostile_mail.large_attachment(RAISED_LIMIT))
    assert code == 552 and b"Too much mail data" in text


def test_encoded_crlf_in_subject_and_from_name_is_stored_on_one_line_and_never_a_header_of_the_reply(
    system: System, inbox
):
    api, stream = inbox
    message_id_header = f"<{uuid.uuid4().hex}@hostile.example>"
    raw = f"Message-ID: {message_id_header}\r\n".encode() + hostile_mail.encoded_crlf_headers()
    code, _ = deliver(system, stream["forwarding_address"], raw)
    assert code == 250

    message = find_message(api, stream["id"], message_id_header)
    assert message["subject"] == "Order help Bcc: evil@example.org"
    assert message["from"] == {"name": "Kana Bcc: evil@example.org", "address": "kana@example.net"}
    assert "header Subject: line breaks or control characters removed" in message["parse_warnings"]
    conversation = api.get(f"/v1/conversations/{message['conversation_id']}").json()
    assert conversation["customer"]["address"] == "kana@example.net"

    sent = reply(api, message["conversation_id"], "We are looking into it.")
    assert [a["address"] for a in sent["to"]] == ["kana@example.net"]
    [dump] = [d for d in relay_dumps(system) if "kana@example.net" in sink_envelope(d, b"X-Rcpt-Args")]
    assert "evil" not in sink_envelope(dump, b"X-Rcpt-Args")
    out = parse(strip_sink_headers(dump))
    names = {name.lower() for name in out}
    assert names <= {
        "from", "to", "subject", "date", "message-id", "in-reply-to", "references", "mime-version", "content-type",
        "dkim-signature", "reply-to",
    }, names  # fmt: skip
    # Reply-To is the conversation's token address on our forwarding address, nothing the customer wrote.
    assert [a.addr_spec.rpartition("@")[2] for a in out["Reply-To"].addresses] == ["in.mailstream.test"]
    assert out["Bcc"] is None and out["Subject"] == "Re: Order help Bcc: evil@example.org"
    assert [a.addr_spec for a in out["To"].addresses] == ["kana@example.net"]
