"""Dead letters as records an operator can read: what a copy on `<queue>.dead` says, pure.

The keeper (`consumers/dead_letters.py`) turns each broker message into the document `letter_record` builds; the API
and the CLI show `preview` (never the raw body: mail bytes are omitted and fields that look like secrets are
redacted); a requeue republishes the body with `requeue_headers`. Nothing here touches the broker or the database.
"""

import base64
import binascii
import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from mailstream_common.broker import (
    HEADER_ATTEMPT,
    HEADER_DEAD_LETTERED_AT,
    HEADER_ERROR,
    HEADER_EVENT,
    HEADER_FIRST_SEEN,
    HEADER_ORIGIN_EXCHANGE,
    HEADER_ORIGIN_QUEUE,
    HEADER_ORIGIN_ROUTING_KEY,
    HEADER_REQUEUES,
)
from mailstream_common.topology import HEADER_RETRY_TIER

STATES = ("dead", "requeuing", "requeued", "discarded")

#: Field names whose values are never shown (compared case-insensitively, as substrings).
SECRET_MARKERS = ("secret", "token", "password", "passwd", "private", "api_key", "apikey", "authorization", "signature")
#: Fields that carry whole mails or files as base64: shown as their size only.
BULK_FIELDS = ("raw", "content", "data", "body")
PREVIEW_STRING_MAX = 300
PREVIEW_LIST_MAX = 20
PREVIEW_DEPTH_MAX = 6
REASON_MAX = 1000
HEADER_VALUE_MAX = 500


def letter_id(queue: str, message_id: str | None, body: bytes) -> str:
    """One record per message and queue, whatever the number of copies: the message id (every event has one), else
    the body's digest."""
    key = message_id or "sha256-" + hashlib.sha256(body).hexdigest()
    return f"{queue}:{key}"


def requeue_count(headers: dict[str, Any]) -> int:
    try:
        return max(0, int(headers.get(HEADER_REQUEUES, 0)))
    except (TypeError, ValueError):
        return 0


def accounts_of(payload: Any) -> list[str]:
    """The accounts a message concerns: its `account_id`, or those of its stream targets (a mail.received or
    mail.analysed for several streams)."""
    if not isinstance(payload, dict):
        return []
    found: list[str] = []
    if isinstance(payload.get("account_id"), str):
        found.append(payload["account_id"])
    for target in payload.get("targets") or []:
        if isinstance(target, dict) and isinstance(target.get("account_id"), str):
            found.append(target["account_id"])
    return sorted(set(found))


def decode_body(body: bytes) -> Any:
    """The JSON body, or None when it is not JSON (a dead letter may be exactly the message nobody could read)."""
    try:
        return json.loads(body)
    except (UnicodeDecodeError, ValueError):
        return None


def _is_secret(name: str) -> bool:
    lowered = name.lower()
    return any(marker in lowered for marker in SECRET_MARKERS)


def preview(payload: Any, *, depth: int = 0) -> Any:
    """A bounded copy of the body that is safe to show: secrets redacted, bulk bytes replaced by their size, long
    strings and lists cut (with a note of what was cut)."""
    if depth >= PREVIEW_DEPTH_MAX:
        return "[nested too deep]"
    if isinstance(payload, dict):
        shown: dict[str, Any] = {}
        for name, value in payload.items():
            if _is_secret(name):
                shown[name] = "[redacted]"
            elif name in BULK_FIELDS and isinstance(value, str):
                shown[name] = f"[{len(value)} characters omitted]"
            else:
                shown[name] = preview(value, depth=depth + 1)
        return shown
    if isinstance(payload, list):
        items = [preview(item, depth=depth + 1) for item in payload[:PREVIEW_LIST_MAX]]
        if len(payload) > PREVIEW_LIST_MAX:
            items.append(f"[{len(payload) - PREVIEW_LIST_MAX} more items]")
        return items
    if isinstance(payload, str) and len(payload) > PREVIEW_STRING_MAX:
        return payload[:PREVIEW_STRING_MAX] + f"[... {len(payload) - PREVIEW_STRING_MAX} more characters]"
    return payload


def _plain_header(value: Any) -> Any:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str):
        return value[:HEADER_VALUE_MAX]
    if isinstance(value, (int, float, bool)) or value is None:
        return value
    return str(value)[:HEADER_VALUE_MAX]


def header_pairs(headers: dict[str, Any]) -> list[dict[str, Any]]:
    """The broker headers as stored: name/value pairs of plain values (names may hold dots, so never a mapping);
    RabbitMQ's own `x-death` bookkeeping is left out (the broker writes it again)."""
    return [{"name": name, "value": _plain_header(value)} for name, value in headers.items() if name != "x-death"]


def shown_headers(pairs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The headers as an operator sees them: any whose name looks like a secret redacted."""
    return [{"name": p["name"], "value": "[redacted]" if _is_secret(p["name"]) else p["value"]} for p in pairs]


def _timestamp(value: Any, default: datetime) -> datetime:
    try:
        return datetime.fromtimestamp(float(value), UTC)
    except (TypeError, ValueError, OverflowError):
        return default


def letter_record(
    queue: str,
    body: bytes,
    headers: dict[str, Any],
    *,
    message_id: str | None,
    correlation_id: str | None,
    content_type: str | None,
    now: datetime,
) -> dict[str, Any]:
    """The document kept for one dead-lettered copy (without its body, which is stored in chunks beside it).

    `account_id` is set only when the message concerns exactly one account: only then may that account's admins
    see it; a message for several accounts (or none) is for the platform's operators alone."""
    payload = decode_body(body)
    accounts = accounts_of(payload)
    try:
        attempts = max(1, int(headers.get(HEADER_ATTEMPT, 1)))
    except (TypeError, ValueError):
        attempts = 1
    reason = str(headers.get(HEADER_ERROR) or "no reason recorded")[:REASON_MAX]
    dead_at = _timestamp(headers.get(HEADER_DEAD_LETTERED_AT), now)
    return {
        "_id": letter_id(queue, message_id, body),
        "queue": queue,
        "origin_queue": str(headers.get(HEADER_ORIGIN_QUEUE) or queue),
        "state": "dead",
        "reason": reason,
        "attempts": attempts,
        "event": str(headers.get(HEADER_EVENT) or "") or None,
        "origin_exchange": _plain_header(headers.get(HEADER_ORIGIN_EXCHANGE)),
        "origin_routing_key": _plain_header(headers.get(HEADER_ORIGIN_ROUTING_KEY)),
        "message_id": message_id,
        "correlation_id": correlation_id,
        "content_type": content_type,
        "account_id": accounts[0] if len(accounts) == 1 else None,
        "account_ids": accounts,
        "first_seen_at": _timestamp(headers.get(HEADER_FIRST_SEEN), now) if HEADER_FIRST_SEEN in headers else None,
        "dead_at": dead_at,
        "kept_at": now,
        "requeues": requeue_count(headers),
        "headers": header_pairs(headers),
        "preview": preview(payload) if payload is not None else None,
        "size": len(body),
        "history": [{"event": "died", "at": dead_at, "reason": reason, "attempts": attempts}],
    }


#: Headers a requeued copy drops: it starts its retries afresh, and the keeper's record holds the old ones.
RESET_ON_REQUEUE = (HEADER_ATTEMPT, HEADER_FIRST_SEEN, HEADER_ERROR, HEADER_DEAD_LETTERED_AT, HEADER_RETRY_TIER)


def requeue_headers(pairs: list[dict[str, Any]], requeues: int) -> dict[str, Any]:
    """The headers of the copy put back on the origin queue: the original ones (event, schema version, origin),
    attempts reset, and the requeue count that tells the keeper a later death from a redelivered copy."""
    kept = {p["name"]: p["value"] for p in pairs if p["name"] not in RESET_ON_REQUEUE}
    return {**kept, HEADER_REQUEUES: requeues}


def split_chunks(body: bytes, size: int) -> list[bytes]:
    return [body[i : i + size] for i in range(0, len(body), size)] or [b""]


def names_any(body: bytes, needles: list[str]) -> bool:
    """Whether a dead letter's body names any needle (an address, a message or conversation id), case-insensitively:
    in the JSON text itself, or inside a base64 string of it (a mail's raw bytes travel base64-encoded)."""
    lowered = [needle.lower().encode() for needle in needles if needle]
    if not lowered:
        return False
    if any(needle in body.lower() for needle in lowered):
        return True
    return any(any(needle in decoded.lower() for needle in lowered) for decoded in _base64_strings(decode_body(body)))


def _base64_strings(payload: Any) -> list[bytes]:
    """The decoded bytes of every string in the payload that is valid base64 of some length."""
    found: list[bytes] = []
    stack = [payload]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str) and len(item) >= 16:
            try:
                found.append(base64.b64decode(item, validate=True))
            except (binascii.Error, ValueError):
                continue
    return found
