"""Cursor pagination: `{"items": [...], "next_cursor": "..."|null}` with `?limit=` (default 50, max 200), `?cursor=`.

A cursor is url-safe base64 of the last item's sort values plus a checksum, so an edited cursor is a 422 naming
`cursor` rather than a silent restart; it needs no secrecy since every query stays scoped to the caller's account.
(The same shape as the gateway's own lists.)
"""

from typing import Annotated, Any, Generic, TypeVar

from fastapi import HTTPException, Query
from pydantic import BaseModel, Field

from mailstream_common import cursors

T = TypeVar("T")

DEFAULT_LIMIT = 50
MAX_LIMIT = 200


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


def encode_cursor(values: dict[str, Any]) -> str:
    return cursors.encode_cursor(values)


def decode_cursor(cursor: str | None) -> dict[str, Any] | None:
    if not cursor:
        return None
    try:
        return cursors.decode_cursor(cursor)
    except cursors.InvalidCursorError as exc:
        raise InvalidCursor() from exc
