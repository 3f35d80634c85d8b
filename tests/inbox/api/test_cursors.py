"""Page cursors as the API hands them out and reads them back."""

import re
from datetime import UTC, datetime

import pytest
from fastapi import HTTPException

from mailstream_common.pages import decode_cursor, encode_cursor


def test_cursor_round_trip_keeps_datetimes_and_strings():
    values = {"created_at": datetime(2026, 11, 27, 1, 2, 3, 456000, tzinfo=UTC), "_id": "ab" * 16}
    cursor = encode_cursor(values)
    assert re.fullmatch(r"[A-Za-z0-9_\-]+\.[0-9a-f]{12}", cursor)
    assert decode_cursor(cursor) == values


@pytest.mark.parametrize(
    "mangle",
    [
        lambda c: c[:-1] + ("0" if c[-1] != "0" else "1"),  # checksum edited
        lambda c: "A" + c,  # body edited
        lambda c: c.split(".")[0],  # checksum dropped
        lambda c: "not base64!.abcdefabcdef",
        lambda c: "",
    ],
)
def test_a_mangled_cursor_is_a_422_naming_the_cursor(mangle):
    cursor = encode_cursor({"_id": "x"})
    with pytest.raises(HTTPException) as caught:
        decode_cursor(mangle(cursor))
    assert caught.value.status_code == 422
    assert caught.value.detail[0]["loc"] == ["query", "cursor"]
