"""MIME part numbering shared by ingest (which lists attachments) and inbox (which extracts their bytes).

Parts are numbered as IMAP's BODYSTRUCTURE does (RFC 3501 section 6.4.5): the children of a multipart are
"1", "2", ...; nested multiparts add ".N"; a message/rfc822 part's own body continues the numbering inside it;
a message that is not multipart has the single part "1".
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
    if not message.is_multipart():
        yield (prefix or "1"), message
        return
    payload = message.get_payload()
    if message.get_content_type() == "message/rfc822" and payload:
        # The encapsulated message: its parts continue this part's numbering.
        yield from iter_leaf_parts(payload[0], prefix)
        return
    for index, child in enumerate(payload, start=1):
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
    payload = part.get_payload(decode=True)
    if payload is None:  # a message/rfc822 kept whole, or an undecodable part: serve its body as it is
        body = part.as_bytes() if part.get_content_type() == "message/rfc822" else b""
        return body, part.get_content_type()
    return payload, part.get_content_type()
