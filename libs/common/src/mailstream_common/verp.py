"""VERP bounce addresses: the envelope sender of every outgoing mail names the message it belongs to.

`bounce+<message_id>.<signature>@<bounce domain>`: the signature (an HMAC with the internal secret) lets ingest
accept RCPT only for addresses Mailstream really issued, so the bounce domain is no open door. Message ids are
lowercase hex, and the local part stays under RFC 5321's 64 octets.
"""

import base64
import hashlib
import hmac
import re

PREFIX = "bounce+"
_LOCAL = re.compile(r"^bounce\+([0-9a-f]{1,40})\.([a-z2-7]{16})$")


def _signature(message_id: str, secret: bytes) -> str:
    digest = hmac.new(secret, message_id.encode(), hashlib.sha256).digest()
    return base64.b32encode(digest[:10]).decode().lower()


def encode_bounce_address(message_id: str, secret: bytes, domain: str) -> str:
    return f"{PREFIX}{message_id}.{_signature(message_id, secret)}@{domain}"


def decode_bounce_address(address: str, secret: bytes, domain: str) -> str | None:
    """The message id a bounce address names, or None if it is not one we issued."""
    local, _, addr_domain = address.strip().lower().rpartition("@")
    if addr_domain != domain.lower():
        return None
    match = _LOCAL.match(local)
    if match is None or not hmac.compare_digest(match.group(2), _signature(match.group(1), secret)):
        return None
    return match.group(1)
