"""Opaque list cursors shared by every HTTP API (`?cursor=` / `next_cursor`).

A cursor is url-safe base64 of a small JSON object (the last item's sort values) plus a checksum, so a truncated or
edited cursor is refused instead of silently restarting the list. It is not a secret and needs none: every query
stays scoped to the caller's account, so a forged cursor only moves within the caller's own data. Datetimes
survive the round trip (they are the sort keys of most lists). Each API turns `InvalidCursorError` into its 422.
"""

import base64
import binascii
import hashlib
import json
from datetime import datetime
from typing import Any

_DATETIME_TAG = "$dt"


class InvalidCursorError(ValueError):
    """The cursor was not made by `encode_cursor` (truncated, edited or from elsewhere)."""


def _checksum(payload: bytes) -> str:
    return hashlib.blake2b(payload, digest_size=6, person=b"ms-cursor").hexdigest()


def _to_json(value: Any) -> Any:
    return {_DATETIME_TAG: value.isoformat()} if isinstance(value, datetime) else value


def _from_json(value: Any) -> Any:
    if isinstance(value, dict) and set(value) == {_DATETIME_TAG}:
        return datetime.fromisoformat(value[_DATETIME_TAG])
    return value


def encode_cursor(values: dict[str, Any]) -> str:
    payload = json.dumps({k: _to_json(v) for k, v in values.items()}, separators=(",", ":"), sort_keys=True).encode()
    body = base64.urlsafe_b64encode(payload).decode("ascii").rstrip("=")
    return f"{body}.{_checksum(payload)}"


def decode_cursor(cursor: str) -> dict[str, Any]:
    """The values `encode_cursor` was given; `InvalidCursorError` for anything else."""
    body, _, checksum = cursor.partition(".")
    try:
        payload = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        if not checksum or _checksum(payload) != checksum:
            raise InvalidCursorError("checksum mismatch")
        values = json.loads(payload)
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise InvalidCursorError(str(exc)) from exc
    if not isinstance(values, dict):
        raise InvalidCursorError("not an object")
    try:
        return {k: _from_json(v) for k, v in values.items()}
    except (TypeError, ValueError) as exc:  # a tagged value that is not an ISO datetime
        raise InvalidCursorError(str(exc)) from exc
