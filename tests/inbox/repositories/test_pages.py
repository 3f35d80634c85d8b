"""Keyset pagination: the strictly-after condition and cursors that do not fit."""

from datetime import UTC, datetime

import pytest


@pytest.mark.parametrize(
    "after",
    [
        {"_id": "a"},  # the created_at is missing
        {"created_at": datetime.now(UTC), "_id": {"$ne": ""}},  # an operator smuggled in
        {"created_at": {"$gt": 0}, "_id": "a"},
        {"created_at": datetime.now(UTC), "_id": "a", "account_id": "other"},
        {"created_at": [1], "_id": "a"},
    ],
)
def test_keyset_filter_refuses_cursor_values_that_do_not_fit_the_list(after):
    from mailstream_inbox.repositories.pages import CursorMismatch, keyset_filter

    with pytest.raises(CursorMismatch):
        keyset_filter("created_at", False, after)


def test_keyset_filter_builds_a_strictly_after_condition():
    from mailstream_inbox.repositories.pages import keyset_filter

    moment = datetime.now(UTC)
    assert keyset_filter("created_at", True, {"created_at": moment, "_id": "b"}) == {
        "$or": [{"created_at": {"$lt": moment}}, {"created_at": moment, "_id": {"$lt": "b"}}]
    }
    assert keyset_filter("_id", False, {"_id": "b"}) == {"_id": {"$gt": "b"}}
    assert keyset_filter("created_at", False, None) == {}
