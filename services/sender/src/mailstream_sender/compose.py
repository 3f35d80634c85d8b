"""Build the outgoing mail's bytes from a reply command. Pure: no I/O, the clock is a parameter.

The top-level header block is written here rather than by `email.message`, whose folder RFC 2047-encodes long
msg-ids in In-Reply-To/References (which breaks threading in every client). The usual body (text + HTML) is
written here too: it is a fixed structure, and `email.message` spends more time on it than the RSA signature
takes. Mails with attachments are built with `email.message`. Either way the result is 7-bit: non-ASCII text
travels as quoted-printable (mostly ASCII) or base64 (mostly not, e.g. Japanese), so any relay takes it.
"""

import base64
import binascii
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.header import Header
from email.message import EmailMessage, MIMEPart
from email.utils import format_datetime, formataddr

from mailstream_common.contracts import Address, ReplyRequested

from .templating import Rendered

_BODY_POLICY = policy.SMTP.clone(cte_type="7bit")
_MAX_LINE = 78
_ASCII = bytes(range(128))
_FIELD_NAME = re.compile(r"^[!-9;-~]+$")  # RFC 5322 ftext: printable ASCII except ':'
_MSG_ID = re.compile(r"^<[^<>\s@]+@[^<>\s@]+>$")
_ADDR_SPEC = re.compile(r"^[^\s<>@\"(),;:\\]+@[^\s<>@\"(),;:\\]+$")
_REPLY_PREFIX = re.compile(r"^\s*(re|aw|sv|antw|vs|ref|回复|答复|返信)\s*(\[\d+\])?\s*[:：]", re.IGNORECASE)

# Headers Mailstream writes itself; a command's extra_headers may not replace them.
RESERVED_HEADERS = frozenset(
    {
        "from",
        "to",
        "cc",
        "bcc",
        "subject",
        "date",
        "message-id",
        "in-reply-to",
        "references",
        "mime-version",
        "content-type",
        "content-transfer-encoding",
        "dkim-signature",
        "return-path",
        "sender",
    }
)


class ComposeError(ValueError):
    """The command cannot become a valid mail (bad address, CR/LF in a header, bad Message-ID...)."""


@dataclass(frozen=True)
class ComposedMail:
    """The message bytes (CRLF, 7-bit) and the envelope recipients."""

    data: bytes
    recipients: list[str]


def reply_subject(subject: str, is_reply: bool) -> str:
    """`Re: <subject>` for a reply, never `Re: Re: ...`; other subjects unchanged."""
    subject = " ".join(subject.split())
    if not is_reply or _REPLY_PREFIX.match(subject):
        return subject
    return f"Re: {subject}" if subject else "Re:"


def _check_no_line_breaks(what: str, value: str) -> None:
    if "\r" in value or "\n" in value or "\0" in value:
        raise ComposeError(f"{what} contains a line break")


def _fold_words(name: str, words: list[str]) -> str:
    """`Name: w1 w2 ...` folded between words at 78 columns (a single long word stays whole)."""
    lines = [f"{name}:"]
    for word in words:
        if len(lines[-1]) + 1 + len(word) > _MAX_LINE and lines[-1] != f"{name}:":
            lines.append("")
        lines[-1] += f" {word}"
    return "\r\n".join(lines)


def _encoded(name: str, value: str) -> str:
    """An unstructured header: ASCII folded at spaces, anything else as RFC 2047 UTF-8 encoded-words."""
    _check_no_line_breaks(name, value)
    if value.isascii() and "=?" not in value:  # text that looks like an encoded word is encoded, not decoded later
        return _fold_words(name, value.split()) if value.strip() else f"{name}: "
    encoded = Header(value, "utf-8", maxlinelen=_MAX_LINE, header_name=name).encode(linesep="\r\n")
    return f"{name}: {encoded}"


def format_address(address: Address) -> list[str]:
    """One mailbox as header words: the display name quoted or RFC 2047-encoded, then `<addr-spec>`."""
    addr = address.address.strip()
    name = " ".join(address.name.split())
    _check_no_line_breaks("address", addr + name)
    if not _ADDR_SPEC.match(addr) or not addr.isascii():
        raise ComposeError(f"not a deliverable address: {addr!r}")
    if not name:
        return [addr]
    if name.isascii() and "=?" not in name:  # a literal `=?...?=` would be decoded by the recipient's client
        return formataddr((name, addr)).split(" ")  # quotes the name where it has specials
    encoded = Header(name, "utf-8", maxlinelen=_MAX_LINE - 10).encode(linesep="\r\n")
    return [*encoded.split("\r\n "), f"<{addr}>"]


def _address_header(name: str, addresses: list[Address]) -> str:
    words: list[str] = []
    for index, address in enumerate(addresses):
        mailbox = format_address(address)
        if index < len(addresses) - 1:
            mailbox[-1] += ","
        words.extend(mailbox)
    return _fold_words(name, words)


def _msg_id(what: str, value: str) -> str:
    value = value.strip()
    if not _MSG_ID.match(value) or not value.isascii():
        raise ComposeError(f"{what} is not a <msg-id>: {value!r}")
    return value


def _extra_header(name: str, value: str) -> str:
    if not _FIELD_NAME.match(name):
        raise ComposeError(f"invalid header name {name!r}")
    if name.lower() in RESERVED_HEADERS:
        raise ComposeError(f"header {name} is set by Mailstream and cannot be overridden")
    return _encoded(name, value)


def _text_part(content_type: str, text: str) -> bytes:
    """One `text/*; charset=utf-8` leaf with the lightest transfer encoding that keeps it 7-bit."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.endswith("\n"):
        text += "\n"
    data = text.encode("utf-8")
    if data.isascii() and max(map(len, data.split(b"\n"))) <= 998:
        encoding, encoded = "7bit", data
    elif len(data.translate(None, _ASCII)) * 3 < len(data):  # mostly ASCII: readable quoted-printable
        encoding, encoded = "quoted-printable", binascii.b2a_qp(data, istext=True)
    else:
        encoding, encoded = "base64", base64.encodebytes(data)
    head = f'Content-Type: {content_type}; charset="utf-8"\nContent-Transfer-Encoding: {encoding}\n\n'.encode()
    return (head + encoded).replace(b"\n", b"\r\n")


def _alternative_body(rendered: Rendered) -> bytes:
    """MIME-Version and a multipart/alternative of the text and the HTML, as bytes."""
    parts = [_text_part("text/plain", rendered.text), _text_part("text/html", rendered.html)]
    boundary = f"=_ms_{secrets.token_hex(12)}"
    while any(boundary.encode() in part for part in parts):  # practically never; cheap to be sure
        boundary = f"=_ms_{secrets.token_hex(12)}"
    delimiter = f"--{boundary}\r\n".encode()
    head = f'MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary="{boundary}"\r\n\r\n'.encode()
    return head + b"".join(delimiter + part + b"\r\n" for part in parts) + f"--{boundary}--\r\n".encode()


def _body(rendered: Rendered, request: ReplyRequested) -> EmailMessage:
    """With `email.message`: multipart/mixed of the alternative part and the attachments."""
    body = EmailMessage(policy=_BODY_POLICY)
    body.set_content(rendered.text, subtype="plain", charset="utf-8")
    body.add_alternative(rendered.html, subtype="html", charset="utf-8")
    for attachment in request.attachments:
        maintype, _, subtype = attachment.content_type.partition("/")
        _check_no_line_breaks("attachment filename", attachment.filename)
        body.add_attachment(
            attachment.content,
            maintype=maintype or "application",
            subtype=subtype or "octet-stream",
            filename=attachment.filename,
            cid=attachment.content_id,
            disposition="inline" if attachment.content_id else "attachment",
        )
    for part in body.walk():
        if part is not body and isinstance(part, MIMEPart):
            del part["MIME-Version"]
    return body


def compose(request: ReplyRequested, sender: Address, rendered: Rendered, now: datetime) -> ComposedMail:
    """The complete message (unsigned) for `request`, from `sender`, with the (templated) `rendered` bodies."""
    if not request.to:
        raise ComposeError("no recipient")
    is_reply = request.kind != "forwarding_test" and (request.in_reply_to is not None or bool(request.references))
    lines = [
        _address_header("From", [sender]),
        _address_header("To", request.to),
    ]
    if request.cc:
        lines.append(_address_header("Cc", request.cc))
    if request.reply_to:
        lines.append(_address_header("Reply-To", request.reply_to))
    lines.append(_encoded("Subject", reply_subject(request.subject, is_reply)))
    lines.append(f"Date: {format_datetime(now)}")
    lines.append(f"Message-ID: {_msg_id('message_id_header', request.message_id_header)}")
    if request.in_reply_to:
        lines.append(f"In-Reply-To: {_msg_id('in_reply_to', request.in_reply_to)}")
    references = [_msg_id("references", r) for r in request.references]
    if request.in_reply_to and request.in_reply_to.strip() not in references:
        references.append(request.in_reply_to.strip())
    if references:
        lines.append(_fold_words("References", references))
    for name, value in request.extra_headers.items():
        if request.reply_to and name.lower() == "reply-to":
            raise ComposeError("Reply-To is given twice (reply_to and extra_headers)")
        lines.append(_extra_header(name, value))
    header_block = ("\r\n".join(lines) + "\r\n").encode("ascii")
    if request.attachments:
        body = _body(rendered, request).as_bytes(policy=_BODY_POLICY)
    else:
        body = _alternative_body(rendered)
    for hidden in request.bcc:  # validated like the others, but only the envelope names them
        format_address(hidden)
    recipients = list(dict.fromkeys(a.address.strip().lower() for a in [*request.to, *request.cc, *request.bcc]))
    return ComposedMail(data=header_block + body, recipients=recipients)
