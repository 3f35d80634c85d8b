"""MIME part numbering shared by ingest (which lists attachments) and inbox (which extracts their bytes).

Parts are numbered as IMAP's BODYSTRUCTURE does (RFC 3501 section 6.4.5): the children of a multipart are
"1", "2", ...; nested multiparts add ".N"; a message that is not multipart has the single part "1". An attached
message (message/rfc822) is one leaf: it is served whole as an .eml, and whoever needs its inside parses it.

Hostile nesting: the stdlib parser and serialiser recurse once per level, so a mail nested a few hundred levels
deep exhausts Python's recursion limit. Parsing then falls back to the headers alone (the body one unparsed part,
with a `NestingTooDeepDefect`), and an attached message too deep to serialise has no bytes (None); the walk over
the parts here is iterative and never recurses.
"""

from collections.abc import Iterable, Iterator
from email import policy
from email.errors import MessageDefect
from email.message import EmailMessage, Message
from email.parser import BytesHeaderParser, BytesParser

_POLICY = policy.compat32.clone(linesep="\r\n")


class NestingTooDeepDefect(MessageDefect):
    """The MIME structure is nested deeper than the parser can follow: the body was kept as one unparsed part."""


def parse_bytes(raw: bytes) -> EmailMessage:
    """Parse without raising: the stdlib parser records defects instead of failing on broken MIME."""
    try:
        return BytesParser(policy=_POLICY).parsebytes(raw)  # type: ignore[return-value]
    except RecursionError:
        message = BytesHeaderParser(policy=_POLICY).parsebytes(raw)
        message.defects.append(NestingTooDeepDefect())
        return message  # type: ignore[return-value]


def iter_leaf_parts(message: Message, prefix: str = "") -> Iterator[tuple[str, Message]]:
    """Every non-multipart part with its part id, depth first, in order."""
    stack: list[tuple[str, Iterator[Message]]] = []
    current: tuple[str, Message] | None = (prefix, message)
    while True:
        if current is not None:
            part_prefix, part = current
            if not part.is_multipart() or part.get_content_type() == "message/rfc822":
                yield (part_prefix or "1"), part
            else:
                stack.append((part_prefix, enumerate(part.get_payload(), start=1)))  # type: ignore[arg-type]
            current = None
            continue
        if not stack:
            return
        parent_prefix, children = stack[-1]
        child = next(children, None)
        if child is None:
            stack.pop()
            continue
        index, part = child  # type: ignore[misc]
        current = (f"{parent_prefix}.{index}" if parent_prefix else str(index)), part


def attached_message_bytes(part: Message) -> bytes | None:
    """The bytes of the message inside a message/rfc822 part; None when it is nested too deep to serialise."""
    inner = part.get_payload()
    if not (isinstance(inner, list) and inner):
        return b""
    try:
        return inner[0].as_bytes()
    except RecursionError:
        return None


def find_part(message: Message, part_id: str) -> Message | None:
    for candidate_id, part in iter_leaf_parts(message):
        if candidate_id == part_id:
            return part
    return None


def _leaf_content(part: Message) -> tuple[bytes, str] | None:
    if part.get_content_type() == "message/rfc822":
        body = attached_message_bytes(part)
        return None if body is None else (body, "message/rfc822")
    payload = part.get_payload(decode=True)
    return (payload if isinstance(payload, bytes) else b""), part.get_content_type()


def extract_part(raw: bytes, part_id: str) -> tuple[bytes, str] | None:
    """The decoded bytes and content type of one leaf part of a raw message, or None if there is no such part."""
    part = find_part(parse_bytes(raw), part_id)
    return None if part is None else _leaf_content(part)


def extract_parts(raw: bytes, part_ids: Iterable[str]) -> dict[str, tuple[bytes, str]]:
    """`extract_part` for many parts with one parse and one walk (a mail of 10,000 parts is not parsed 10,000
    times); a part id that is missing or cannot be extracted is absent from the result."""
    wanted = set(part_ids)
    found: dict[str, tuple[bytes, str]] = {}
    if not wanted:
        return found
    for candidate_id, part in iter_leaf_parts(parse_bytes(raw)):
        if candidate_id in wanted:
            content = _leaf_content(part)
            if content is not None:
                found[candidate_id] = content
            if len(found) == len(wanted):
                break
    return found
