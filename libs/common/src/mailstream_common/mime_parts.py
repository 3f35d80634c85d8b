"""MIME part numbering shared by ingest (which lists attachments) and inbox (which extracts their bytes).

Parts are numbered as IMAP's BODYSTRUCTURE does (RFC 3501 section 6.4.5): the children of a multipart are
"1", "2", ...; nested multiparts add ".N"; a message that is not multipart has the single part "1". An attached
message (message/rfc822) is one leaf: it is served whole as an .eml, and whoever needs its inside parses it.
"""

from collections.abc import Iterator
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesParser


def parse_bytes(raw: bytes) -> EmailMessage:
    """Parse without raising: the stdlib parser records defects instead of failing on broken MIME."""
    return BytesParser(policy=policy.compat32.clone(linesep="\r\n")).parsebytes(raw)  # type: ignore[return-value]


def iter_leaf_parts(message: Message, prefix: str = "") -> Iterator[tuple[str, Message]]:
    """Every non-multipart part with its part id, depth first, in order."""
    if not message.is_multipart() or message.get_content_type() == "message/rfc822":
        yield (prefix or "1"), message
        return
    for index, child in enumerate(message.get_payload(), start=1):
        part_id = f"{prefix}.{index}" if prefix else str(index)
        yield from iter_leaf_parts(child, part_id)


def find_part(message: Message, part_id: str) -> Message | None:
    for candidate_id, part in iter_leaf_parts(message):
        if candidate_id == part_id:
            return part
    return None


def extract_part(raw: bytes, part_id: str) -> tuple[bytes, str] | None:
    """The decoded bytes and content type of one leaf part of a raw message, or None if there is no such part."""
    part = find_part(parse_bytes(raw), part_id)
    if part is None:
        return None
    if part.get_content_type() == "message/rfc822":
        inner = part.get_payload()
        body = inner[0].as_bytes() if isinstance(inner, list) and inner else b""
        return body, "message/rfc822"
    payload = part.get_payload(decode=True)
    return (payload or b""), part.get_content_type()
