"""MIME part ids as IMAP numbers them, and extraction of one leaf part by its id."""

import pytest

from mailstream_common.mime_parts import extract_part, find_part, iter_leaf_parts, parse_bytes

SINGLE = b"Content-Type: text/plain\r\n\r\nhello\r\n"

NESTED = (
    b"Content-Type: multipart/mixed; boundary=outer\r\n\r\n"
    b"--outer\r\nContent-Type: multipart/alternative; boundary=inner\r\n\r\n"
    b"--inner\r\nContent-Type: text/plain\r\n\r\nplain\r\n"
    b"--inner\r\nContent-Type: text/html\r\n\r\n<p>html</p>\r\n"
    b"--inner--\r\n"
    b"--outer\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0=\r\n"
    b"--outer\r\nContent-Type: message/rfc822\r\n\r\n"
    b"Subject: inner\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: text/plain\r\n\r\nin\r\n--x--\r\n"
    b"--outer--\r\n"
)

# A multipart whose boundary never comes has no children: it is one leaf, not an error.
BROKEN = b"Content-Type: multipart/mixed; boundary=never\r\n\r\nno boundary ever comes\r\n"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (SINGLE, [("1", "text/plain")]),
        (NESTED, [("1.1", "text/plain"), ("1.2", "text/html"), ("2", "application/pdf"), ("3", "message/rfc822")]),
        (BROKEN, [("1", "multipart/mixed")]),
    ],
)
def test_leaf_part_ids(raw, expected):
    assert [(pid, part.get_content_type()) for pid, part in iter_leaf_parts(parse_bytes(raw))] == expected


@pytest.mark.parametrize(
    ("raw", "part_id", "expected"),
    [
        (SINGLE, "1", (b"hello\r\n", "text/plain")),
        (NESTED, "1.1", (b"plain", "text/plain")),
        (NESTED, "1.2", (b"<p>html</p>", "text/html")),
        (NESTED, "2", (b"%PDF-", "application/pdf")),
        (NESTED, "1", None),
        (NESTED, "4", None),
        (SINGLE, "2", None),
    ],
)
def test_extract_part(raw, part_id, expected):
    assert extract_part(raw, part_id) == expected


def test_attached_message_is_one_leaf_served_whole():
    body, content_type = extract_part(NESTED, "3")
    assert content_type == "message/rfc822"
    assert body.startswith(b"Subject: inner") and b"--x--" in body


def test_find_part_of_a_missing_id_is_none():
    assert find_part(parse_bytes(NESTED), "9.9") is None
