"""Hostile mail against the pure parsing core: hypothesis properties and a generated corpus of nasty mails.

Properties: parsing never raises on arbitrary bytes or on arbitrary (often broken) MIME built by strategies, its
results are bounded, decoded header fields never hold CR, LF or NUL, ingest's part numbering is the one inbox
extracts by, and forward detection never raises and is deterministic.

The corpus (tests/support/hostile_mail.py): each mail parses within time_bound(raw) and a peak of
peak_bound(raw) traced by tracemalloc, and records a warning (docs/reliability.md, "Hostile mail").
"""

import base64
import time
import tracemalloc

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailstream_common.mime_parts import extract_parts, parse_bytes
from mailstream_ingest.charsets import header_to_text
from mailstream_ingest.forwards import detect_forward
from mailstream_ingest.parsing import MAX_HEADER_CHARS, MAX_HEADERS, MAX_PARTS, parse_addresses, parse_mail
from tests.support import hostile_mail
from tests.support.fuzzing import fuzz

FORBIDDEN = ("\r", "\n", "\x00")


def time_bound(raw: bytes) -> float:
    """Seconds per mail, parse plus forward detection: 10 s plus 0.5 s per MB (a safety bound on a shared 2-core
    machine, not a speed figure; measured unloaded: 0.8 s for 10,000 parts, 2.5 s for the 36 MB mail)."""
    return 10.0 + 0.5 * len(raw) / 1e6


def peak_bound(raw: bytes) -> int:
    """Peak Python allocation while parsing one mail: 16 MB plus ten times its size (measured: at most 7.7x)."""
    return 16 * 1024 * 1024 + 10 * len(raw)


def assert_clean_headers(parsed) -> None:
    for header in parsed.headers:
        assert not any(c in header.value for c in FORBIDDEN), header
        assert not any(c in header.name for c in FORBIDDEN), header
        assert len(header.value) <= MAX_HEADER_CHARS
    assert not any(c in parsed.subject for c in FORBIDDEN)
    for address in [parsed.from_, *parsed.to, *parsed.cc, *parsed.reply_to]:
        if address is not None:
            assert not any(c in address.name + address.address for c in FORBIDDEN), address
    for attachment in parsed.attachments:
        assert not any(c in (attachment.filename or "") for c in FORBIDDEN), attachment


def assert_bounded(parsed) -> None:
    assert len(parsed.headers) <= MAX_HEADERS
    assert len(parsed.attachments) <= MAX_PARTS
    assert "\x00" not in parsed.text and "\x00" not in (parsed.html or "")


# --- strategies -------------------------------------------------------------------------------------------------

_header_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)


@st.composite
def encoded_words(draw) -> str:
    """An RFC 2047 word around arbitrary bytes (line breaks and NUL included), sometimes with a lying charset."""
    data = draw(st.binary(max_size=30) | _header_text.map(lambda t: t.encode()))
    charset = draw(st.sampled_from(["utf-8", "iso-8859-1", "shift_jis", "iso-2022-jp", "x-bogus", "us-ascii"]))
    if draw(st.booleans()):
        return f"=?{charset}?b?{base64.b64encode(data).decode()}?="
    quoted = "".join(f"={b:02X}" if not chr(b).isalnum() else chr(b) for b in data)
    return f"=?{charset}?q?{quoted}?="


header_values = st.lists(
    encoded_words() | _header_text.map(lambda t: t.replace("\r", " ").replace("\n", " ")), max_size=4
).map(" ".join)

# Display names as mailers write them unquoted (atoms, non-ASCII text) and encoded words around anything at all.
display_names = st.lists(
    encoded_words() | st.text(st.sampled_from("abcXYZ019 éあ注"), min_size=1, max_size=12), max_size=4
).map(" ".join)

_bodies = st.binary(max_size=300) | st.text(max_size=300).map(lambda t: t.encode("utf-8", "surrogatepass"))


@st.composite
def leaf_parts(draw) -> bytes:
    content_type = draw(
        st.sampled_from(["text/plain", "text/html", "application/octet-stream", "image/png", "message/rfc822"])
    )
    charset = draw(st.sampled_from(["", "; charset=utf-8", "; charset=shift_jis", "; charset=bogus", "; charset="]))
    encoding = draw(st.sampled_from(["", "7bit", "8bit", "base64", "quoted-printable", "x-uuencode", "garbage"]))
    body = draw(_bodies)
    if encoding == "base64" and draw(st.booleans()):
        body = base64.encodebytes(body)
    head = f"Content-Type: {content_type}{charset}\r\n"
    if encoding:
        head += f"Content-Transfer-Encoding: {encoding}\r\n"
    if draw(st.booleans()):
        head += f'Content-Disposition: attachment; filename="{draw(header_values)}"\r\n'
    return head.encode("utf-8", "surrogateescape") + b"\r\n" + body


def multipart(children: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    @st.composite
    def build(draw) -> bytes:
        boundary = draw(st.sampled_from(["b1", "b2", "=_x", "b1"]))  # repeats: a child reusing its parent's boundary
        parts = draw(st.lists(children, max_size=5))
        closed = draw(st.booleans())
        body = b"".join(b"--" + boundary.encode() + b"\r\n" + p + b"\r\n" for p in parts)
        if closed:
            body += b"--" + boundary.encode() + b"--\r\n"
        subtype = draw(st.sampled_from(["mixed", "alternative", "related", "digest"]))
        return f'Content-Type: multipart/{subtype}; boundary="{boundary}"\r\n\r\n'.encode() + body

    return build()


mime_bodies = st.recursive(leaf_parts(), multipart, max_leaves=12)


@st.composite
def mails(draw) -> bytes:
    headers = [
        ("From", draw(header_values) + " <" + draw(st.sampled_from(["a@b.example", "x", "", "@", "a@b@c"])) + ">"),
        ("To", draw(st.sampled_from(["support@acme.test", "undisclosed-recipients:;", "a@b, c@d", ""]))),
        ("Subject", draw(header_values)),
        ("Message-ID", draw(st.sampled_from(["<a@b>", "", "<<>>", "no brackets"]))),
        ("Date", draw(st.sampled_from(["Sat, 05 Dec 2026 01:00:00 +0000", "yesterday", "", "Mon, 32 Foo 99999"]))),
    ]
    headers += draw(st.lists(st.tuples(st.sampled_from(["Reply-To", "Cc", "X-Custom", "Resent-From"]), header_values)))
    head = "".join(f"{name}: {value}\r\n" for name, value in headers).encode("utf-8", "surrogateescape")
    return head + b"MIME-Version: 1.0\r\n" + draw(mime_bodies)


# --- properties -------------------------------------------------------------------------------------------------


@fuzz()
@given(st.binary(max_size=4000))
def test_parse_never_raises_on_arbitrary_bytes(raw):
    parsed = parse_mail(raw)
    assert_clean_headers(parsed)
    assert_bounded(parsed)


@fuzz()
@given(mails())
def test_parse_never_raises_on_structured_broken_mime_and_inbox_extracts_its_parts(raw):
    parsed = parse_mail(raw)
    assert_clean_headers(parsed)
    assert_bounded(parsed)
    extracted = extract_parts(raw, [a.part_id for a in parsed.attachments])
    for attachment in parsed.attachments:  # ingest's part ids are the ones inbox extracts the same bytes by
        if attachment.size or attachment.part_id in extracted:
            data, content_type = extracted[attachment.part_id]
            assert len(data) == attachment.size and content_type == attachment.content_type


@fuzz()
@given(header_values, st.sampled_from(["Subject", "From", "X-Anything"]), st.sampled_from([None, "utf-8", "cp932"]))
def test_decoded_header_values_never_hold_line_breaks_or_nul(value, name, fallback):
    text, warnings = header_to_text(value, name, fallback)
    assert not any(c in text for c in FORBIDDEN)
    if any(c in value for c in FORBIDDEN):
        assert warnings


@fuzz()
@given(st.lists(st.tuples(display_names, st.sampled_from(["a@b.example", "bad", "x@y"])), max_size=4))
def test_addresses_never_hold_line_breaks_and_encoded_words_never_split_them(mailboxes):
    raw = ", ".join(f"{name} <{address}>" for name, address in mailboxes)
    for found in parse_addresses(raw, "From", None, []):
        assert not any(c in found.name + found.address for c in FORBIDDEN)
        assert found.address in {address for _, address in mailboxes}


_forward_lines = st.sampled_from(
    [
        "---------- Forwarded message ---------",
        "-------- Forwarded Message --------",
        "-----Original Message-----",
        "Begin forwarded message:",
        "________________________________",
        "From: Kana <kana@example.net>",
        "差出人: 田中 <tanaka@example.jp>",
        "Date: Sat, 5 Dec 2026 at 01:00",
        "Sent: 2026年12月5日 1:00",
        "Subject: Fwd: help",
        "To: support@acme.test",
        "From:",
        "",
    ]
)


@fuzz()
@given(
    st.lists(_forward_lines | st.text(max_size=60), max_size=25),
    st.sampled_from(["support@acme.test", "kana@example.net", "owner@acme.test"]),
    st.sampled_from(["", "Fwd: ", "転送: "]),
    st.booleans(),
)
def test_forward_detection_never_raises_and_is_deterministic(lines, sender, prefix, attach):
    body = "\r\n".join(lines).encode("utf-8", "surrogatepass")
    head = f"From: {sender}\r\nTo: fwd@in.mailstream.test\r\nSubject: {prefix}help\r\nMIME-Version: 1.0\r\n"
    if attach:
        raw = (
            (
                head + 'Content-Type: multipart/mixed; boundary="f"\r\n\r\n--f\r\nContent-Type: text/plain\r\n\r\n'
            ).encode()
            + body
            + b"\r\n--f\r\nContent-Type: message/rfc822\r\n\r\n"
            + body
            + b"\r\n--f--\r\n"
        )
    else:
        raw = (head + "Content-Type: text/plain; charset=utf-8\r\n\r\n").encode() + body
    owners = {"support@acme.test"}
    first = detect_forward(parse_mail(raw), owners)
    second = detect_forward(parse_mail(raw), owners)
    assert (first and first.model_dump()) == (second and second.model_dump())
    if first is not None:
        assert first.original_from.address.lower() not in owners


# --- the corpus -------------------------------------------------------------------------------------------------


def measure(raw: bytes):
    """(parsed, seconds, peak bytes): timed without tracemalloc (which slows deep recursion twentyfold), then the
    same work again under tracemalloc for the peak."""
    started = time.perf_counter()
    parsed = parse_mail(raw)
    detect_forward(parsed, {"support@acme.test"})
    elapsed = time.perf_counter() - started
    tracemalloc.start()
    try:
        detect_forward(parse_mail(raw), {"support@acme.test"})
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return parsed, elapsed, peak


@pytest.mark.parametrize("case", list(hostile_mail.CASES))
def test_each_nasty_mail_parses_within_bounds_with_a_warning(case):
    raw = hostile_mail.CASES[case]()
    expected = hostile_mail.EXPECTED_WARNING[case]
    parsed, elapsed, peak = measure(raw)
    assert elapsed < time_bound(raw), f"{case}: {elapsed:.2f} s"
    assert peak < peak_bound(raw), f"{case}: peak {peak / 1e6:.1f} MB"
    assert_clean_headers(parsed)
    assert_bounded(parsed)
    if expected is not None:
        assert expected in parsed.warnings, parsed.warnings


def test_encoded_crlf_in_subject_and_from_name_is_stored_on_one_line_and_the_customer_kept():
    parsed = parse_mail(hostile_mail.encoded_crlf_headers())
    assert parsed.subject == "Order help Bcc: evil@example.org"
    assert parsed.from_ is not None
    assert parsed.from_.address == "kana@example.net"  # the encoded ':' no longer reads as a group
    assert parsed.from_.name == "Kana Bcc: evil@example.org"


def test_nesting_deeper_than_the_parser_can_follow_keeps_the_headers_and_warns():
    raw = hostile_mail.deep_nesting(1200)
    parsed, elapsed, peak = measure(raw)
    assert parsed.subject == "1200 levels"
    assert "MIME defect: NestingTooDeepDefect" in parsed.warnings
    assert elapsed < time_bound(raw) and peak < peak_bound(raw)


def test_ten_thousand_parts_are_extracted_with_one_parse():
    raw = hostile_mail.many_parts()
    parsed = parse_mail(raw)
    started = time.perf_counter()
    extracted = extract_parts(raw, [a.part_id for a in parsed.attachments])
    assert len(extracted) == len(parsed.attachments) == MAX_PARTS - 1  # the first part is the text
    assert time.perf_counter() - started < time_bound(raw)


def test_unparseable_nesting_falls_back_to_one_part_in_ingest_and_inbox_alike():
    message = parse_bytes(hostile_mail.nested_rfc822_chain(3000))
    assert not message.is_multipart()


def test_an_attached_forward_with_an_encoded_crlf_name_keeps_the_original_sender():
    inner = hostile_mail.encoded_crlf_headers()
    raw = (
        b"From: Acme Support <support@acme.test>\r\nTo: fwd@in.mailstream.test\r\nSubject: Fwd: Order help\r\n"
        b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="f"\r\n\r\n'
        b"--f\r\nContent-Type: text/plain\r\n\r\nsee below\r\n--f\r\nContent-Type: message/rfc822\r\n\r\n"
        + inner
        + b"\r\n--f--\r\n"
    )
    forwarded = detect_forward(parse_mail(raw), {"support@acme.test"})
    assert forwarded is not None and forwarded.method == "forward_attached"
    assert forwarded.original_from.address == "kana@example.net"
    assert forwarded.original_from.name == "Kana Bcc: evil@example.org"
