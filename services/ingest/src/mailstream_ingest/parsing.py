"""MIME parsing of whatever real clients send, into plain data; never raises, records what it had to guess.

Part ids come from `mailstream_common.mime_parts.iter_leaf_parts`, the numbering inbox uses to extract bytes.
"""

import base64
import binascii
import hashlib
import html as html_lib
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import Message
from email.utils import getaddresses, parsedate_to_datetime

from mailstream_common.contracts.base import Address, HeaderField
from mailstream_common.contracts.mail import AttachmentInfo
from mailstream_common.mime_parts import attached_message_bytes, iter_leaf_parts, parse_bytes

from .charsets import CONTROL_CHARACTERS, decode_text, header_to_text

EMAIL = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
"""An address as it appears in free text (a bounce, a forwarded block, a confirmation): dot-atoms only."""

_MSGID = re.compile(r"<[^<>\s]+>")
MAX_HEADERS = 500
MAX_HEADER_CHARS = 16_384
"""One decoded header value at most (a 1 MB Subject is cut here, with a warning; the raw mail keeps it whole)."""
MAX_ALL_HEADERS_CHARS = 262_144
"""All decoded header values together at most: the stored message must stay far below MongoDB's 16 MB document."""
MAX_PARTS = 1_000
"""Leaf parts read (text, attachments); a mail of 10,000 parts lists the first 1,000, with a warning."""
DEEP_NESTING = 20
"""Parts nested deeper than this are still read, with a warning: real mailers stay below ten levels."""


@dataclass
class ParsedMail:
    message: Message
    headers: list[HeaderField] = field(default_factory=list)
    subject: str = ""
    from_: Address | None = None
    to: list[Address] = field(default_factory=list)
    cc: list[Address] = field(default_factory=list)
    reply_to: list[Address] = field(default_factory=list)
    date: datetime | None = None
    message_id: str | None = None
    in_reply_to: list[str] = field(default_factory=list)
    references: list[str] = field(default_factory=list)
    text: str = ""
    html: str | None = None
    attachments: list[AttachmentInfo] = field(default_factory=list)
    attached_messages: list[Message] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def header(self, name: str) -> str | None:
        """The first decoded value of a header, or None."""
        lowered = name.lower()
        for header in self.headers:
            if header.name.lower() == lowered:
                return header.value
        return None

    def header_values(self, name: str) -> list[str]:
        lowered = name.lower()
        return [h.value for h in self.headers if h.name.lower() == lowered]


def parse_mail(raw: bytes) -> ParsedMail:
    """Everything the inbox needs from a raw mail. A mail the parser chokes on still yields a result."""
    message = parse_bytes(raw)
    parsed = ParsedMail(message=message)
    try:
        _read_headers(parsed)
    except Exception as exc:  # pragma: no cover - the stdlib parser is lenient; this is the last resort
        parsed.warnings.append(f"headers unreadable: {type(exc).__name__}: {exc}")
    try:
        _read_body(parsed)
    except Exception as exc:
        parsed.warnings.append(f"body unreadable: {type(exc).__name__}: {exc}")
        if not parsed.text:
            parsed.text, _ = decode_text(raw.partition(b"\r\n\r\n")[2][:200_000], None, "raw body")
    for defect in message.defects:
        parsed.warnings.append(f"MIME defect: {type(defect).__name__}")
    parsed.warnings = list(dict.fromkeys(parsed.warnings))
    return parsed


# --- headers --------------------------------------------------------------------------------------------------


def _fallback_charset(message: Message) -> str | None:
    """8-bit headers are usually in the charset of the body (how old Japanese mailers behave)."""
    for _, part in iter_leaf_parts(message):
        charset = part.get_content_charset()
        if charset:
            return charset
    return None


def _read_headers(parsed: ParsedMail) -> None:
    message = parsed.message
    fallback = _fallback_charset(message)
    raw_items = list(message.raw_items())
    if len(raw_items) > MAX_HEADERS:
        parsed.warnings.append(f"{len(raw_items)} header fields; kept the first {MAX_HEADERS}")
    budget = MAX_ALL_HEADERS_CHARS
    for index, (name, raw_value) in enumerate(raw_items[:MAX_HEADERS]):
        if budget <= 0:
            parsed.warnings.append(f"header fields over {MAX_ALL_HEADERS_CHARS} characters; kept the first {index}")
            break
        name = CONTROL_CHARACTERS.sub("", name)
        value, warnings = header_to_text(str(raw_value)[: 4 * MAX_HEADER_CHARS], name, fallback)
        if len(str(raw_value)) > 4 * MAX_HEADER_CHARS or len(value) > MAX_HEADER_CHARS:
            value = value[:MAX_HEADER_CHARS]
            warnings.append(f"header {name[:40]} truncated to {MAX_HEADER_CHARS} characters")
        budget -= len(value)
        parsed.warnings.extend(warnings)
        parsed.headers.append(HeaderField(name=name, value=value))

    raw = {name.lower(): str(value)[: 4 * MAX_HEADER_CHARS] for name, value in reversed(raw_items)}  # first wins
    decoded = {h.name.lower(): h.value for h in reversed(parsed.headers)}
    parsed.subject = parsed.header("Subject") or ""
    parsed.from_ = next(iter(parse_addresses(raw.get("from", ""), "From", fallback, parsed.warnings)), None)
    parsed.to = parse_addresses(_all(raw_items, "to"), "To", fallback, parsed.warnings)
    parsed.cc = parse_addresses(_all(raw_items, "cc"), "Cc", fallback, parsed.warnings)
    parsed.reply_to = parse_addresses(raw.get("reply-to", ""), "Reply-To", fallback, parsed.warnings)
    parsed.date = parse_date(decoded.get("date"), parsed.warnings)
    ids = _MSGID.findall(decoded.get("message-id", ""))
    parsed.message_id = ids[0] if ids else None
    parsed.in_reply_to = _MSGID.findall(decoded.get("in-reply-to", ""))
    parsed.references = _MSGID.findall(decoded.get("references", ""))


def _all(raw_items: list[tuple[str, object]], name: str) -> str:
    return ", ".join(str(v)[: 4 * MAX_HEADER_CHARS] for n, v in raw_items if n.lower() == name)


_ENCODED_WORD = re.compile(r"=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=")


def parse_addresses(raw_value: str, name: str, fallback: str | None, warnings: list[str]) -> list[Address]:
    """Split on the raw value, then decode each display name.

    Encoded words may hold anything once decoded, and even undecoded they may hold `:` or `@` (a display name
    `=?utf-8?q?Kana=0D=0ABcc:_evil@example.org?=` reads as a group to the address splitter): each is replaced by
    a plain placeholder word before splitting and put back only into the display name it belongs to.
    """
    if not raw_value:
        return []
    text, more = header_to_text(raw_value, name, fallback) if _has_8bit(raw_value) else (raw_value, [])
    warnings.extend(more)
    text = re.sub(r"\r?\n[ \t]+", " ", text)
    words: list[str] = []

    def hide(match: re.Match[str]) -> str:
        words.append(match.group(0))
        return f"mailstreamencodedword{len(words) - 1}x"

    text = _ENCODED_WORD.sub(hide, text)
    restore = re.compile(r"mailstreamencodedword(\d+)x")
    result: list[Address] = []
    for display, address in getaddresses([text]):
        address = address.strip()
        if not address or "@" not in address or restore.search(address) or CONTROL_CHARACTERS.search(address):
            if address:
                warnings.append(f"header {name}: unusable address skipped")
            continue
        display = restore.sub(lambda m: words[int(m.group(1))], display)
        decoded, more = header_to_text(display, name, fallback)
        warnings.extend(more)
        result.append(Address(name=decoded.strip().strip('"').strip(), address=address))
    return result


def _has_8bit(value: str) -> bool:
    return any("\udc80" <= ch <= "\udcff" for ch in value)


def parse_date(value: str | None, warnings: list[str]) -> datetime | None:
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(str(value))
    except (TypeError, ValueError, IndexError):
        warnings.append(f"unparseable Date: {str(value)[:80]!r}")
        return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed


# --- body -----------------------------------------------------------------------------------------------------


def part_header(part: Message, name: str) -> str:
    """A part's header as text (the stdlib hands back a Header object, not a str, when it holds 8-bit bytes)."""
    for key, value in part.raw_items():
        if key.lower() == name.lower():
            return header_to_text(str(value), name)[0]
    return ""


def _is_attachment(part: Message, part_id: str) -> bool:
    disposition = part_header(part, "Content-Disposition").split(";")[0].strip().lower()
    if disposition == "attachment":
        return True
    is_body_text = part.get_content_type() in ("text/plain", "text/html") and not part.get_filename()
    return not is_body_text


def _read_body(parsed: ParsedMail) -> None:
    texts: list[str] = []
    htmls: list[str] = []
    deepest = 0
    for index, (part_id, part) in enumerate(iter_leaf_parts(parsed.message)):
        if index == MAX_PARTS:
            total = sum(1 for _ in iter_leaf_parts(parsed.message))
            parsed.warnings.append(f"{total} MIME parts; read the first {MAX_PARTS}")
            break
        depth = part_id.count(".") + 1
        if depth > DEEP_NESTING and depth > deepest:
            deepest = depth
        for defect in part.defects:
            parsed.warnings.append(f"MIME defect in part {part_id}: {type(defect).__name__}")
        if _is_attachment(part, part_id):
            parsed.attachments.append(_attachment(part_id, part, parsed))
            continue
        content, warnings = _decode_part_text(part, part_id)
        parsed.warnings.extend(warnings)
        if part.get_content_type() == "text/html":
            htmls.append(content)
        else:
            texts.append(content)
    if deepest:
        parsed.warnings.append(f"MIME parts nested {deepest} levels deep")
    parsed.html = "\n".join(htmls) if htmls else None
    if texts:
        parsed.text = "\n".join(texts)
    elif parsed.html:
        parsed.text = html_to_text(parsed.html)


def _decode_part_text(part: Message, part_id: str) -> tuple[str, list[str]]:
    warnings = _transfer_encoding_warnings(part, part_id)
    payload = part.get_payload(decode=True)
    if payload is None:
        payload = b""
    if not isinstance(payload, bytes):
        payload = str(payload).encode("utf-8", "surrogateescape")
    text, more = decode_text(payload, part.get_content_charset(), f"part {part_id}")
    if "\x00" in text:
        text = text.replace("\x00", "")
        more.append(f"part {part_id}: NUL bytes removed")
    return text, warnings + more


_DAMAGED_QP = re.compile(r"=(?![0-9A-Fa-f]{2}|[ \t]*(?:\r?\n|\Z))")


def _transfer_encoding_warnings(part: Message, part_id: str) -> list[str]:
    """The stdlib hands back damaged base64 undecoded and damaged quoted-printable as it is, silently; say so."""
    encoding = part_header(part, "Content-Transfer-Encoding").strip().lower()
    raw = part.get_payload()
    if not isinstance(raw, str):
        return []
    if encoding == "quoted-printable":
        return [f"part {part_id}: damaged quoted-printable"] if _DAMAGED_QP.search(raw) else []
    if encoding != "base64":
        return []
    compact = re.sub(r"\s+", "", raw)
    try:
        base64.b64decode(compact + "=" * (-len(compact) % 4), validate=True)
    except (binascii.Error, ValueError):
        return [f"part {part_id}: damaged base64"]
    return []


def _attachment(part_id: str, part: Message, parsed: ParsedMail) -> AttachmentInfo:
    content_type = part.get_content_type()
    if content_type == "message/rfc822":
        inner = part.get_payload()
        inner_message = inner[0] if isinstance(inner, list) and inner else None
        data = attached_message_bytes(part)
        if data is None:
            parsed.warnings.append(f"part {part_id}: attached message nested too deep to extract")
            data = b""
        if inner_message is not None:
            parsed.attached_messages.append(inner_message)
    else:
        data = part.get_payload(decode=True) or b""
        if not isinstance(data, bytes):
            data = b""
    filename = part.get_filename()
    if filename is not None:
        filename, warnings = header_to_text(str(filename), f"filename of part {part_id}")
        parsed.warnings.extend(warnings)
    content_id = part_header(part, "Content-ID").strip().strip("<>") or None
    disposition = part_header(part, "Content-Disposition").split(";")[0].strip().lower()
    return AttachmentInfo(
        part_id=part_id,
        filename=filename or None,
        content_type=content_type,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        content_id=content_id,
        inline=disposition == "inline" or (disposition != "attachment" and content_id is not None),
    )


_BLOCK_TAGS = re.compile(r"(?i)<\s*(br|/p|/div|/tr|/li|/h[1-6]|/blockquote|hr)\b[^>]*>")
_TAGS = re.compile(r"<[^>]+>")
_DROP = re.compile(r"(?is)<(script|style|head)\b.*?</\1\s*>")


def html_to_text(html: str) -> str:
    """Plain text good enough for forward detection and previews (inbox sanitises the HTML it shows)."""
    text = _DROP.sub("", html)
    text = _BLOCK_TAGS.sub("\n", text)
    text = _TAGS.sub("", text)
    text = html_lib.unescape(text).replace("\xa0", " ")
    return re.sub(r"\n{3,}", "\n\n", "\n".join(line.rstrip() for line in text.splitlines())).strip()
