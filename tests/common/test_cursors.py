"""List cursors: values (datetimes included) survive; anything edited or foreign is refused."""

from datetime import UTC, datetime

import pytest

from mailstream_common.cursors import InvalidCursorError, decode_cursor, encode_cursor


def test_round_trip_keeps_datetimes_and_ids():
    values = {"last_message_at": datetime(2026, 11, 27, 3, 0, tzinfo=UTC), "_id": "ab" * 16, "n": 3}
    assert decode_cursor(encode_cursor(values)) == values


@pytest.mark.parametrize(
    "tamper",
    [
        lambda c: c[:-1] + ("0" if c[-1] != "0" else "1"),  # checksum edited
        lambda c: "x" + c,  # body edited
        lambda c: c.partition(".")[0],  # checksum dropped
        lambda c: "not a cursor",
        lambda c: "",
    ],
)
def test_edited_or_foreign_cursors_are_refused(tamper):
    with pytest.raises(InvalidCursorError):
        decode_cursor(tamper(encode_cursor({"_id": "x"})))
