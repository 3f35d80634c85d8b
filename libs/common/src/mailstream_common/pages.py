"""The list shape of every HTTP API: `{"items": [...], "next_cursor": "..."|null}` with `?limit=` and `?cursor=`.

FastAPI types for the cursors of `mailstream_common.cursors` (needs the `api` extra: `mailstream-common[api]`).
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
    str | None,
    Query(
        max_length=2048,
        # What encode_cursor makes: url-safe base64 of the sort values, a dot, a 12-hex-digit checksum.
        pattern=r"^[A-Za-z0-9_-]*\.[0-9a-f]{12}$",
        description="`next_cursor` of the previous page (opaque); omit for the first page",
    ),
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
