"""Cursor pagination: `{"items": [...], "next_cursor": "..."|null}` with `?limit=` and `?cursor=`.

A cursor is opaque to clients: url-safe base64 of a small JSON object (the last item's sort values) plus a
checksum, so a truncated or edited cursor is refused with 422 instead of silently restarting the list. It is not
a secret and needs none: every query stays scoped to the caller's account, so a forged cursor only moves within
the caller's own data. Datetimes survive the round trip (they are the sort keys of most lists).

In a route: `limit: LimitParam = DEFAULT_LIMIT, cursor: CursorParam = None` (FastAPI wants the default there),
then `after = decode_optional_cursor(cursor)` and `Page(items=..., next_cursor=encode_optional_cursor(values))`.
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
    """422 in FastAPI's validation-error shape, naming the `cursor` query parameter."""

    def __init__(self, reason: str = "invalid or expired cursor") -> None:
        super().__init__(
            422,
            detail=[{"type": "value_error", "loc": ["query", "cursor"], "msg": reason, "input": None}],
        )


def encode_cursor(values: dict[str, Any]) -> str:
    return cursors.encode_cursor(values)


def decode_cursor(cursor: str) -> dict[str, Any]:
    """The values `encode_cursor` was given; raises `InvalidCursor` (422) on anything else."""
    try:
        return cursors.decode_cursor(cursor)
    except cursors.InvalidCursorError as exc:
        raise InvalidCursor() from exc


def decode_optional_cursor(cursor: str | None) -> dict[str, Any] | None:
    return decode_cursor(cursor) if cursor else None


def encode_optional_cursor(values: dict[str, Any] | None) -> str | None:
    return encode_cursor(values) if values else None
