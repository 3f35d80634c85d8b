"""The 250 -> stored latency is measured from ingest's clock to inbox's: never negative, naive times are UTC."""

from datetime import UTC, datetime, timedelta

from mailstream_inbox.metrics import seconds_since

NOW = datetime(2026, 3, 2, 9, 15, tzinfo=UTC)


def test_elapsed_seconds_from_the_250_to_the_store():
    assert seconds_since(NOW - timedelta(seconds=1.5), NOW) == 1.5
    assert seconds_since((NOW - timedelta(minutes=2)).replace(tzinfo=None), NOW) == 120


def test_a_clock_ahead_of_ours_never_gives_a_negative_latency():
    assert seconds_since(NOW + timedelta(seconds=3), NOW) == 0.0
