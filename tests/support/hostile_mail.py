"""A corpus of nasty mails, generated (never committed): each the kind of thing a hostile or broken mailer sends.

Every mail is CRLF-framed, its lines within the SMTP line limit unless the case is about that line, and addressed
`From: attacker@hostile.example`. `CASES` maps a case name to its builder; the builders are deterministic.
"""

import base64
from collections.abc import Callable

FROM = "Hostile Sender <attacker@hostile.example>"
INJECTED_SUBJECT = "=?utf-8?q?Order_help=0D=0ABcc:_evil@example.org?="
INJECTED_FROM = "=?utf-8?q?Kana=0D=0ABcc:_evil@example.org=0D=0A?= <kana@example.net>"


def _head(subject: str, extra: str = "", *, sender: str = FROM) -> bytes:
    return (
        f"From: {sender}\r\nTo: support@acme.test\r\nSubject: {subject}\r\n"
        f"Date: Sat, 05 Dec 2026 01:00:00 +0000\r\nMIME-Version: 1.0\r\n{extra}"
    ).encode()


def many_parts(count: int = 10_000) -> bytes:
    """A multipart/mixed of `count` small attachments."""
    parts = b"".join(
        b'--b\r\nContent-Type: application/octet-stream; name="p%d.bin"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\nAAEC\r\n" % i
        for i in range(count)
    )
    body = b"--b\r\nContent-Type: text/plain\r\n\r\nten thousand parts\r\n" + parts + b"--b--\r\n"
    return _head(f"{count} parts", 'Content-Type: multipart/mixed; boundary="b"\r\n') + b"\r\n" + body


def deep_nesting(levels: int = 100) -> bytes:
    """`levels` multiparts, each inside the previous one, a text part at the bottom."""
    opening = b"".join(
        b'--n%d\r\nContent-Type: multipart/mixed; boundary="n%d"\r\n\r\n' % (i, i + 1) for i in range(levels - 1)
    )
    bottom = b"--n%d\r\nContent-Type: text/plain\r\n\r\nthe bottom\r\n--n%d--\r\n" % (levels - 1, levels - 1)
    closing = b"".join(b"--n%d--\r\n" % i for i in reversed(range(levels - 1)))
    head = _head(f"{levels} levels", 'Content-Type: multipart/mixed; boundary="n0"\r\n')
    return head + b"\r\n" + opening + bottom + closing


def huge_header_line(size: int = 1024 * 1024, *, folded: bool = True) -> bytes:
    """A Subject of `size` characters: folded into 76-column lines (what SMTP carries), or one physical line."""
    words = ["x" * 70] * (size // 71)
    value = "\r\n ".join(words) if folded else " ".join(words)
    return _head(value) + b"Content-Type: text/plain\r\n\r\nbody\r\n"


def nul_bytes() -> bytes:
    """NUL bytes in a header, in the text and in a filename."""
    return (
        _head("null\x00byte subject", 'Content-Type: multipart/mixed; boundary="z"\r\n')
        + b"\r\n--z\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nbefore\x00after\x00\x00\r\n"
        + b'--z\r\nContent-Type: application/pdf; name="a\x00b.pdf"\r\nContent-Disposition: attachment; '
        + b'filename="a\x00b.pdf"\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0=\r\n--z--\r\n'
    )


def invalid_base64() -> bytes:
    return (
        _head("bad base64", 'Content-Type: multipart/mixed; boundary="q"\r\n')
        + b"\r\n--q\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + b"SGVsbG8gd29ybGQ!!!@@@***not base64 at all===\r\nAAA\r\n"
        + b'--q\r\nContent-Type: image/png; name="x.png"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
        + b"iVBORw0KGgo%%%%\r\n--q--\r\n"
    )


def invalid_quoted_printable() -> bytes:
    return (
        _head("bad quoted-printable", "Content-Type: text/plain; charset=utf-8\r\n")
        + b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        + b"Caf=C3=A9 =ZZ broken =4 escape =\r\n=E3=81 half a character=\r\n"
    )


def unterminated_boundary() -> bytes:
    """The closing delimiter never comes, and the second part's boundary is a different one."""
    return (
        _head("unterminated", 'Content-Type: multipart/mixed; boundary="never-closed"\r\n')
        + b"\r\n--never-closed\r\nContent-Type: text/plain\r\n\r\nfirst part\r\n"
        + b'--never-closed\r\nContent-Type: multipart/alternative; boundary="inner"\r\n\r\n'
        + b"--inner\r\nContent-Type: text/plain\r\n\r\ninner part, no end either\r\n"
    )


def charset_lies() -> bytes:
    """Labelled UTF-8 but Shift_JIS; labelled us-ascii but UTF-8; a charset that does not exist."""
    return (
        _head("=?utf-8?b?gqCCoA==?= lies", 'Content-Type: multipart/mixed; boundary="c"\r\n')
        + b"\r\n--c\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        + "こんにちは".encode("shift_jis")
        + b"\r\n--c\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
        + "Grüße".encode()
        + b"\r\n--c\r\nContent-Type: text/plain; charset=x-no-such-charset\r\n\r\nabc\xff\xfe\r\n--c--\r\n"
    )


def large_attachment(size: int = 25 * 1024 * 1024) -> bytes:
    """One attachment of `size` bytes (base64: a third more on the wire)."""
    encoded = base64.encodebytes(bytes(range(256)) * (size // 256)).replace(b"\n", b"\r\n")
    return (
        _head("large attachment", 'Content-Type: multipart/mixed; boundary="L"\r\n')
        + b"\r\n--L\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
        + b'--L\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename="big.bin"\r\n'
        + b"Content-Transfer-Encoding: base64\r\n\r\n"
        + encoded
        + b"--L--\r\n"
    )


def nested_rfc822_chain(levels: int = 200) -> bytes:
    """A message/rfc822 inside a message/rfc822 ... `levels` deep: forwarded forwards, zip-bomb-like in depth."""
    inner = b"From: origin@customer.example\r\nSubject: the original\r\n\r\nthe original text\r\n"
    for level in range(levels):
        inner = (
            b"From: fwd%d@relay.example\r\nSubject: Fwd: level %d\r\nMIME-Version: 1.0\r\n"
            b'Content-Type: multipart/mixed; boundary="r%d"\r\n\r\n'
            b"--r%d\r\nContent-Type: text/plain\r\n\r\nforwarded\r\n"
            b"--r%d\r\nContent-Type: message/rfc822\r\n\r\n"
            % (level, level, level, level, level)
            + inner
            + b"\r\n--r%d--\r\n" % level
        )
    return _head(f"{levels} nested messages", "") + inner.partition(b"MIME-Version: 1.0\r\n")[2]


def encoded_crlf_headers() -> bytes:
    """A Subject and a From name whose encoded words decode to a line break and a Bcc header."""
    return _head(INJECTED_SUBJECT, "Content-Type: text/plain\r\n", sender=INJECTED_FROM) + b"\r\nPlease help\r\n"


CASES: dict[str, Callable[[], bytes]] = {
    "10,000 parts": many_parts,
    "100-level nesting": deep_nesting,
    "1 MB header (folded)": huge_header_line,
    "NUL bytes": nul_bytes,
    "invalid base64": invalid_base64,
    "invalid quoted-printable": invalid_quoted_printable,
    "unterminated boundaries": unterminated_boundary,
    "charset lies": charset_lies,
    "25 MB attachment": large_attachment,
    "200 nested message/rfc822": nested_rfc822_chain,
    "encoded CR/LF in headers": encoded_crlf_headers,
}


EXPECTED_WARNING: dict[str, str | None] = {
    # The warning each case must record (parsing/storing), None where the mail is well-formed.
    "10,000 parts": "10001 MIME parts; read the first 1000",
    "100-level nesting": "MIME parts nested 100 levels deep",
    "1 MB header (folded)": "header Subject truncated to 16384 characters",
    "NUL bytes": "part 1: NUL bytes removed",
    "invalid base64": "part 1: damaged base64",
    "invalid quoted-printable": "part 1: damaged quoted-printable",
    "unterminated boundaries": "MIME defect: CloseBoundaryNotFoundDefect",
    "charset lies": "part 1: not valid utf-8",
    "25 MB attachment": None,  # well-formed: nothing to warn about (SMTP refuses it at the default size limit)
    "200 nested message/rfc822": "part 2: attached message nested too deep to extract",
    "encoded CR/LF in headers": "header Subject: line breaks or control characters removed",
}
