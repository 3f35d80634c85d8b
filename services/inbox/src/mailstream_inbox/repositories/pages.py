"""Keyset pagination: `keyset_page` is the one pagination query every list uses: a stable order on (sort field, _id) and a cursor that
holds the last item's values, so deep pages cost the same as the first (no skip).
"""

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.collection import AsyncCollection


class CursorMismatch(ValueError):
    """A cursor whose values do not fit this list (another list's cursor, or a crafted one); the API answers 422."""


_CURSOR_VALUE_TYPES = (str, int, float, datetime, type(None))


def _check_cursor(sort_field: str, after: Mapping[str, Any]) -> None:
    expected = {"_id"} if sort_field == "_id" else {sort_field, "_id"}
    if set(after) != expected or not isinstance(after["_id"], str):
        raise CursorMismatch("the cursor does not belong to this list")
    if not all(isinstance(value, _CURSOR_VALUE_TYPES) and not isinstance(value, bool) for value in after.values()):
        raise CursorMismatch("the cursor does not belong to this list")


def keyset_filter(sort_field: str, descending: bool, after: Mapping[str, Any] | None) -> dict[str, Any]:
    """The condition 'strictly after the cursor' for an order on (sort_field, _id), both in the same direction.

    Raises `CursorMismatch` when `after` does not hold exactly those fields as plain values (never operators).
    """
    if not after:
        return {}
    _check_cursor(sort_field, after)
    op = "$lt" if descending else "$gt"
    if sort_field == "_id":
        return {"_id": {op: after["_id"]}}
    return {
        "$or": [
            {sort_field: {op: after[sort_field]}},
            {sort_field: after[sort_field], "_id": {op: after["_id"]}},
        ]
    }


async def keyset_page(
    collection: AsyncCollection,
    query: Mapping[str, Any],
    *,
    limit: int,
    after: Mapping[str, Any] | None = None,
    sort_field: str = "created_at",
    descending: bool = False,
    projection: Mapping[str, Any] | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """One page of `query` and the cursor values of its last item (None when there is no further page).

    No index hint: MongoDB's planner picks the designed index by itself (tests/inbox/repositories/
    test_query_plans.py), and SecantusDB 0.7 answers a hinted query by walking and decoding the whole index.

    `after` is what a previous call returned (decoded from the client's cursor); the caller must still scope
    `query` to the account, so a forged cursor can only move within the caller's own data.
    """
    condition = keyset_filter(sort_field, descending, after)
    full_query = {"$and": [dict(query), condition]} if condition else dict(query)
    direction = DESCENDING if descending else ASCENDING
    order = [(sort_field, direction), ("_id", direction)] if sort_field != "_id" else [("_id", direction)]
    cursor = collection.find(full_query, projection).sort(order).limit(limit + 1)
    docs = await cursor.to_list(length=limit + 1)
    if len(docs) <= limit:
        return docs, None
    docs = docs[:limit]
    last = docs[-1]
    next_values = (
        {"_id": last["_id"]} if sort_field == "_id" else {sort_field: last.get(sort_field), "_id": last["_id"]}
    )
    return docs, next_values
