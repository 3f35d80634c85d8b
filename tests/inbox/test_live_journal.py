"""The pure parts of SSE replay: journal keys and cursors, coverage of the journal, what a stream opens with."""

from mailstream_inbox.api.routes.events import FRESH_CURSOR_MARGIN_US, opening
from mailstream_inbox.live_hub import LiveEvent
from mailstream_inbox.live_journal import (
    MAX_LAST_EVENT_ID_LENGTH,
    MEMORY_SLACK_SECONDS,
    Cursor,
    RecentEvents,
    Replay,
    Span,
    check_cursor,
    event_key,
    first_gap,
    parse_cursor,
    position_key,
    to_micros,
)

NOW = 1_800_000_000.0


def test_keys_sort_in_time_order_and_parse_back():
    early = event_key(999, "ffff")  # fixed width: an earlier microsecond sorts first whatever the event id
    later = event_key(1_000, "0000")
    assert early < later
    assert early == "0000000000000999-ffff"
    assert parse_cursor(later) == Cursor(later, 1_000)
    same_ms = sorted([event_key(5, "b"), event_key(5, "a")])
    assert same_ms == [event_key(5, "a"), event_key(5, "b")]


def test_a_position_sorts_before_every_event_of_its_microsecond():
    assert position_key(5) < event_key(5, "00a") < event_key(6, "0")
    assert parse_cursor(position_key(5)) == Cursor(position_key(5), 5)


def test_an_event_id_outside_the_key_alphabet_is_hashed_into_it():
    key = event_key(7, "a b/c\n" * 30)
    assert parse_cursor(key) is not None
    assert key == event_key(7, "a b/c\n" * 30), "the same event always gets the same key"


def test_ids_this_api_did_not_issue_are_not_cursors():
    for text in (
        "",
        "garbage",
        "5c1f0e5e9a4b4e7f8d6c5b4a39281706",  # a bare event id (what ids looked like before the journal)
        "123-abc",  # too few digits
        "0000000000000000012-abc",  # too many
        "1795751935611-490c91f72c53",  # milliseconds: not a key of this API
        "0000000000000012-",
        "0000000000000012-a b",
        "0000000000000012-" + "a" * 65,
        "x" * (MAX_LAST_EVENT_ID_LENGTH + 1),
        "\u0661" * 16 + "-a",  # digits, but not ASCII ones
    ):
        assert parse_cursor(text) is None, text


def test_check_cursor_tells_invalid_future_and_expired_ids_apart():
    retention = 3600
    assert check_cursor("nope", NOW, retention) == "invalid_last_event_id"
    assert check_cursor(event_key(to_micros(NOW + 3600), "a"), NOW, retention) == "invalid_last_event_id"
    assert check_cursor(event_key(to_micros(NOW - 3601), "a"), NOW, retention) == "expired"
    recent = event_key(to_micros(NOW - 10), "a")
    assert check_cursor(recent, NOW, retention) == Cursor(recent, to_micros(NOW - 10))
    slightly_ahead = event_key(to_micros(NOW + 5), "a")  # another replica's clock a little ahead
    assert isinstance(check_cursor(slightly_ahead, NOW, retention), Cursor)


def test_first_gap_finds_where_no_replica_was_journaling():
    assert first_gap(100, 200, [Span(50, 250)]) is None
    assert first_gap(100, 200, [Span(50, 120), Span(119.5, 200)]) is None, "overlapping spans"
    assert first_gap(100, 200, [Span(50, 120), Span(120.8, 200)]) is None, "within the clock slack"
    assert first_gap(100, 200, [Span(50, 120), Span(150, 300)]) == 120
    assert first_gap(100, 200, [Span(150, 300), Span(50, 120)]) == 120, "order of spans does not matter"
    assert first_gap(100, 200, [Span(50, 150)]) == 150, "nobody covers the end"
    assert first_gap(100, 200, [Span(110, 300)]) == 100, "nobody covers the start"
    assert first_gap(100, 200, []) == 100
    assert first_gap(100, 200, [Span(0, 10), Span(20, 30), Span(90, 210)]) is None, "old spans are irrelevant"


def _event(key: str) -> LiveEvent:
    return LiveEvent("conversation.changed", key, {"conversation_id": "c"}, key.split("-", 1)[1])


def test_a_stream_opens_with_the_replay_a_resync_or_a_first_position():
    subscribed_us = to_micros(NOW)
    fresh = opening(Replay(), fresh=True, subscribed_us=subscribed_us)
    assert fresh == [f"id: {position_key(subscribed_us - FRESH_CURSOR_MARGIN_US)}\n\n"]

    replayed = [_event(event_key(1, "a")), _event(event_key(2, "b"))]
    assert opening(Replay(after="x", events=replayed), fresh=False, subscribed_us=subscribed_us) == [
        e.encode() for e in replayed
    ]
    assert opening(Replay(after="x"), fresh=False, subscribed_us=subscribed_us) == [], "nothing missed"

    (resync,) = opening(Replay(resync="expired"), fresh=False, subscribed_us=subscribed_us)
    lines = resync.splitlines()
    assert lines[0] == f"id: {position_key(subscribed_us - FRESH_CURSOR_MARGIN_US)}"
    assert lines[1] == "event: resync"
    assert lines[2].startswith('data: {"reason":"expired","detail":')


def _at(seconds: float, name: str) -> LiveEvent:
    key = event_key(to_micros(seconds), name)
    return LiveEvent("conversation.changed", key, {"conversation_id": name}, name)


def _cursor(seconds: float) -> Cursor:
    return parse_cursor(position_key(to_micros(seconds)))


def test_recent_events_answer_only_for_what_they_saw_all_of():
    recent = RecentEvents(max_events=100, max_age_seconds=3600)
    recent.add("a", _at(NOW + 1, "early"), NOW + 1)
    assert recent.after("a", _cursor(NOW), NOW + 10) is None, "not complete for anything before reset()"

    recent.reset(complete_since=NOW)
    for offset, name in ((5, "b1"), (4, "b0"), (6, "other")):  # arrival order need not be key order
        recent.add("b" if name != "other" else "x", _at(NOW + offset, name), NOW + offset)
    assert recent.after("b", _cursor(NOW), NOW + 10) is None, "too close to the moment it became complete"
    since = NOW + MEMORY_SLACK_SECONDS
    assert [e.event_id for e in recent.after("b", _cursor(since), NOW + 10)] == ["b0", "b1"]
    assert [e.event_id for e in recent.after("b", _cursor(NOW + 4.5), NOW + 10)] == ["b1"]
    assert recent.after("b", _cursor(NOW + 7), NOW + 10) == [], "complete: nothing newer happened"
    assert recent.after("nobody", _cursor(since), NOW + 10) == []

    recent.reset(complete_since=None)  # receiving was interrupted
    assert recent.after("b", _cursor(NOW + 7), NOW + 10) is None


def test_recent_events_forget_the_oldest_and_say_so():
    recent = RecentEvents(max_events=2, max_age_seconds=60)
    recent.reset(complete_since=NOW)
    for i in range(3):
        recent.add("a", _at(NOW + 10 + i, f"e{i}"), NOW + 10 + i)
    assert len(recent) == 2
    assert recent.complete_since == NOW + 10, "e0 is gone: only cursors after it can be answered"
    assert recent.after("a", _cursor(NOW + 10 + MEMORY_SLACK_SECONDS - 0.5), NOW + 13) is None
    assert [e.event_id for e in recent.after("a", _cursor(NOW + 10 + MEMORY_SLACK_SECONDS), NOW + 13)] == ["e2"]

    assert recent.after("a", _cursor(NOW + 80), NOW + 80) == [], "older than max_age: evicted on the way"
    assert len(recent) == 0 and recent.complete_since == NOW + 12
