"""`MailReceived` from one SMTP transaction: one event whatever the number of streams, envelope normalised."""

import hashlib
from datetime import UTC, datetime

import pytest

from mailstream_common.contracts.mail import StreamTarget
from mailstream_ingest.reception import build_mail_received, new_mail_id

AT = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def target(stream_id: str, address: str = "fwd@in.example") -> StreamTarget:
    return StreamTarget(forwarding_address=address, stream_id=stream_id, account_id="a1")


def received(**overrides):
    fields = {
        "mail_id": "m1", "received_at": AT, "raw": b"Subject: x\r\n\r\nbody\r\n", "mail_from": "a@b.example",
        "rcpt_to": ["fwd@in.example"], "targets": [target("s1")], "bounce_tokens": [], "client_ip": "192.0.2.1",
        "helo": "mx.b.example", "tls": False,
    } | overrides  # fmt: skip
    return build_mail_received(**fields)


@pytest.mark.parametrize(("mail_from", "expected"), [("a@b.example", "a@b.example"), ("<>", ""), ("", "")])
def test_null_sender_is_empty(mail_from, expected):
    assert received(mail_from=mail_from).envelope.mail_from == expected


@pytest.mark.parametrize(
    ("targets", "stream_ids"),
    [
        ([], []),
        ([target("s1")], ["s1"]),
        ([target("s1"), target("s2", "other@in.example")], ["s1", "s2"]),
        ([target("s1"), target("s1", "alias@in.example"), target("s2")], ["s1", "s2"]),
    ],
)
def test_each_stream_is_a_target_once(targets, stream_ids):
    assert [t.stream_id for t in received(targets=targets).targets] == stream_ids


@pytest.mark.parametrize(("tokens", "expected"), [([], []), (["t1"], ["t1"]), (["t1", "t2", "t1"], ["t1", "t2"])])
def test_bounce_tokens_are_unique_in_order(tokens, expected):
    assert received(bounce_tokens=tokens).bounce_tokens == expected


def test_envelope_digest_and_size():
    raw = b"Subject: y\r\n\r\n" + b"z" * 100
    event = received(raw=raw, rcpt_to=["FWD@In.Example"], tls=True)
    assert event.envelope.rcpt_to == ["fwd@in.example"]
    assert event.envelope.tls is True and event.envelope.helo == "mx.b.example"
    assert event.correlation_id == event.mail_id == "m1"
    assert event.size == len(raw)
    assert event.raw_sha256 == hashlib.sha256(raw).hexdigest()


def test_new_mail_ids_are_unique_hex():
    ids = {new_mail_id() for _ in range(100)}
    assert len(ids) == 100 and all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
