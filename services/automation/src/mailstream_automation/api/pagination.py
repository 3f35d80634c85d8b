"""Cursor pagination: `{"items": [...], "next_cursor": "..."|null}` with `?limit=` (default 50, max 200), `?cursor=`.

A cursor is url-safe base64 of the last item's sort values plus a checksum, so an edited cursor is a 422 naming
`cursor` rather than a silent restart; it needs no secrecy since every query stays scoped to the caller's account.
(The same shape as the gateway's own lists.)
"""

import base64
import binascii
import hashlib
import json
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

from fastapi import HTTPException, Query
from pydantic import BaseModel, Field

T = TypeVar("T")

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
_DATETIME_TAG = "$dt"


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(description="Pass as `?cursor=` for the next page; null on the last page")


LimitParam = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Items per page (default 50, max 200)")]
CursorParam = Annotated[
    str | None, Query(max_length=2048, description="`next_cursor` of the previous page; omit for the first page")
]


class InvalidCursor(HTTPException):
    def __init__(self) -> None:
        super().__init__(
            422, detail=[{"type": "value_error", "loc": ["query", "cursor"], "msg": "invalid cursor", "input": None}]
        )


def _checksum(payload: bytes) -> str:
    return hashlib.blake2b(payload, digest_size=6, person=b"ms-auto-cur").hexdigest()


def encode_cursor(values: dict[str, Any]) -> str:
    plain = {k: {_DATETIME_TAG: v.isoformat()} if isinstance(v, datetime) else v for k, v in values.items()}
    payload = json.dumps(plain, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(payload).decode("ascii").rstrip("=") + "." + _checksum(payload)


def decode_cursor(cursor: str | None) -> dict[str, Any] | None:
    if not cursor:
        return None
    body, _, checksum = cursor.partition(".")
    try:
        payload = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        if not checksum or _checksum(payload) != checksum:
            raise InvalidCursor()
        values = json.loads(payload)
        if not isinstance(values, dict):
            raise InvalidCursor()
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise InvalidCursor() from exc
    return {
        k: datetime.fromisoformat(v[_DATETIME_TAG]) if isinstance(v, dict) and set(v) == {_DATETIME_TAG} else v
        for k, v in values.items()
    }
