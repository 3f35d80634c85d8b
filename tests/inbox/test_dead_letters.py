"""The pure core of dead letters: what a copy on `<queue>.dead` becomes, what an operator may see of it, and the
headers a requeued copy carries."""

import json
from datetime import UTC, datetime

import pytest

from mailstream_inbox import dead_letters

NOW = datetime(2026, 12, 5, 3, 0, tzinfo=UTC)

HEADERS = {
    "x-event": "mail.analysed",
    "x-schema-version": 1,
    "x-attempt": 8,
    "x-first-seen": 1764900000.5,
    "x-error": "RuntimeError: database said no at store.py:12",
    "x-origin-queue": "inbox.store",
    "x-origin-exchange": "mailstream.events",
    "x-origin-routing-key": "mail.analysed",
    "x-dead-lettered-at": 1764903600.0,
    "x-death": [{"count": 1, "queue": "inbox.store.retry.600s"}],
}


def record(body: bytes, headers: dict | None = None, message_id: str | None = "m1") -> dict:
    return dead_letters.letter_record(
        "inbox.store",
        body,
        HEADERS if headers is None else headers,
        message_id=message_id,
        correlation_id="c1",
        content_type="application/json",
        now=NOW,
    )


def test_a_letter_names_its_reason_attempts_origin_and_correlation():
    letter = record(json.dumps({"account_id": "a1", "mail_id": "m"}).encode())
    assert letter["_id"] == "inbox.store:m1"
    assert letter["state"] == "dead" and letter["requeues"] == 0
    assert letter["reason"] == "RuntimeError: database said no at store.py:12"
    assert letter["attempts"] == 8
    assert (letter["origin_exchange"], letter["origin_routing_key"]) == ("mailstream.events", "mail.analysed")
    assert letter["correlation_id"] == "c1" and letter["event"] == "mail.analysed"
    assert letter["dead_at"] == datetime.fromtimestamp(1764903600.0, UTC)
    assert letter["first_seen_at"] == datetime.fromtimestamp(1764900000.5, UTC)
    assert letter["account_id"] == "a1"
    assert "x-death" not in [h["name"] for h in letter["headers"]]  # the broker's bookkeeping, rewritten on requeue


def test_a_letter_rejected_at_once_has_one_attempt_and_a_reason_even_without_headers():
    letter = record(b"not json", headers={}, message_id=None)
    assert letter["attempts"] == 1
    assert letter["reason"] == "no reason recorded"
    assert letter["_id"].startswith("inbox.store:sha256-")  # no message id: the body's digest keeps it once
    assert letter["preview"] is None and letter["account_id"] is None
    assert letter["dead_at"] == NOW


@pytest.mark.parametrize(
    ("payload", "account_id", "account_ids"),
    [
        ({"account_id": "a1"}, "a1", ["a1"]),
        ({"targets": [{"account_id": "a1"}, {"account_id": "a1"}]}, "a1", ["a1"]),
        ({"targets": [{"account_id": "a1"}, {"account_id": "a2"}]}, None, ["a1", "a2"]),  # operators only
        ({"message_id": "x"}, None, []),  # a bounce names no account
        ([1, 2], None, []),
    ],
)
def test_only_a_letter_of_exactly_one_account_belongs_to_that_account(payload, account_id, account_ids):
    letter = record(json.dumps(payload).encode())
    assert (letter["account_id"], letter["account_ids"]) == (account_id, account_ids)


def test_the_preview_omits_mail_bytes_redacts_secrets_and_cuts_long_values():
    payload = {
        "raw": "QUJD" * 1000,
        "subject": "x" * 1000,
        "signing_key": {"private_key": "-----BEGIN PRIVATE KEY-----"},
        "api_token": "ms_secret",
        "attachments": [{"filename": "a.pdf", "content": "AAAA"}] * 25,
        "nested": {"a": {"b": {"c": {"d": {"e": {"f": "hidden"}}}}}},
    }
    shown = dead_letters.preview(payload)
    assert shown["raw"] == "[4000 characters omitted]"
    assert shown["subject"].startswith("x" * 300) and shown["subject"].endswith("[... 700 more characters]")
    assert shown["signing_key"] == {"private_key": "[redacted]"} and shown["api_token"] == "[redacted]"
    assert len(shown["attachments"]) == 21 and shown["attachments"][-1] == "[5 more items]"
    assert shown["attachments"][0] == {"filename": "a.pdf", "content": "[4 characters omitted]"}
    assert "hidden" not in json.dumps(shown)
    assert "ms_secret" not in json.dumps(shown) and "PRIVATE KEY" not in json.dumps(shown)


def test_shown_headers_redact_secret_looking_names():
    pairs = [{"name": "x-event", "value": "a"}, {"name": "x-auth-token", "value": "s3cret"}]
    assert dead_letters.shown_headers(pairs) == [
        {"name": "x-event", "value": "a"},
        {"name": "x-auth-token", "value": "[redacted]"},
    ]


def test_a_requeued_copy_starts_its_attempts_afresh_and_carries_its_requeue_count():
    letter = record(b"{}")
    headers = dead_letters.requeue_headers(letter["headers"], 2)
    assert headers == {
        "x-event": "mail.analysed",
        "x-schema-version": 1,
        "x-origin-queue": "inbox.store",
        "x-origin-exchange": "mailstream.events",
        "x-origin-routing-key": "mail.analysed",
        "x-requeues": 2,
    }
    assert dead_letters.requeue_count(headers) == 2
    assert dead_letters.requeue_count({"x-requeues": "junk"}) == 0


def test_bodies_split_into_chunks_and_back():
    body = bytes(range(256)) * 10
    chunks = dead_letters.split_chunks(body, 1000)
    assert [len(c) for c in chunks] == [1000, 1000, 560] and b"".join(chunks) == body
    assert dead_letters.split_chunks(b"", 1000) == [b""]


def test_a_body_names_a_needle_in_its_text_or_inside_a_base64_string():
    import base64
    import json

    from mailstream_inbox.dead_letters import names_any

    raw = base64.b64encode(b"From: Ann <ANN@example.org>\r\nSubject: hi\r\n\r\nbody").decode()
    mail = json.dumps({"mail_id": "m1", "raw": raw}).encode()
    assert names_any(mail, ["ann@example.org"])  # only inside the base64 raw bytes, another case
    assert names_any(b'{"message_id": "msg-7"}', ["msg-7"])
    assert not names_any(mail, ["bob@example.org"])
    assert not names_any(b"\xff not json", ["ann@example.org"])
    assert not names_any(mail, [""])
