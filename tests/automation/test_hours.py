"""Business-hours windows: local wall-clock time, overnight ranges, DST changes, and their validation."""

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from mailstream_automation.conditions import Condition, evaluate_condition
from mailstream_automation.facts import build_facts
from mailstream_automation.hours import BusinessHours

TOKYO_OFFICE = {"timezone": "Asia/Tokyo", "days": ["mon", "tue", "wed", "thu", "fri"], "from": "09:00", "to": "18:00"}
BERLIN_NIGHT = {"timezone": "Europe/Berlin", "days": ["fri", "sat"], "from": "22:00", "to": "06:00"}
NEW_YORK_EARLY = {"timezone": "America/New_York", "days": ["sun"], "from": "01:00", "to": "04:00"}
WHOLE_SUNDAY = {"timezone": "UTC", "days": ["sun"], "from": "00:00", "to": "24:00"}


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


CASES = [
    # window, instant (UTC), inside?
    (TOKYO_OFFICE, utc(2026, 3, 2, 0, 0), True),  # Mon 09:00 JST: start is inclusive
    (TOKYO_OFFICE, utc(2026, 3, 1, 23, 59), False),  # Sun 23:59 UTC = Mon 08:59 JST
    (TOKYO_OFFICE, utc(2026, 3, 2, 8, 59), True),  # Mon 17:59 JST
    (TOKYO_OFFICE, utc(2026, 3, 2, 9, 0), False),  # Mon 18:00 JST: end is exclusive
    (TOKYO_OFFICE, utc(2026, 3, 6, 23, 0), False),  # Fri 23:00 UTC = Sat 08:00 JST
    (TOKYO_OFFICE, utc(2026, 3, 7, 2, 0), False),  # Sat 11:00 JST: not a listed day
    (TOKYO_OFFICE, utc(2026, 3, 8, 16, 0), False),  # Mon 01:00 JST
    # Overnight: Friday 22:00 -> Saturday 06:00 and Saturday 22:00 -> Sunday 06:00, Berlin time.
    (BERLIN_NIGHT, utc(2026, 1, 9, 21, 0), True),  # Fri 22:00 CET
    (BERLIN_NIGHT, utc(2026, 1, 9, 20, 59), False),  # Fri 21:59 CET
    (BERLIN_NIGHT, utc(2026, 1, 10, 4, 59), True),  # Sat 05:59 CET: tail of Friday's window
    (BERLIN_NIGHT, utc(2026, 1, 10, 5, 0), False),  # Sat 06:00 CET
    (BERLIN_NIGHT, utc(2026, 1, 11, 3, 0), True),  # Sun 04:00 CET: tail of Saturday's window
    (BERLIN_NIGHT, utc(2026, 1, 8, 23, 0), False),  # Fri 00:00 CET: Thursday has no window
    (BERLIN_NIGHT, utc(2026, 1, 11, 21, 30), False),  # Sun 22:30 CET: Sunday has no window
    # DST in Berlin (2026-03-29 02:00 CET -> 03:00 CEST): the window follows the local clock.
    (BERLIN_NIGHT, utc(2026, 3, 27, 21, 0), True),  # Fri 22:00 CET
    (BERLIN_NIGHT, utc(2026, 3, 28, 20, 0), False),  # Sat 21:00 CET
    (BERLIN_NIGHT, utc(2026, 3, 28, 21, 0), True),  # Sat 22:00 CET
    (BERLIN_NIGHT, utc(2026, 3, 29, 3, 30), True),  # Sun 05:30 CEST (UTC+2 now)
    (BERLIN_NIGHT, utc(2026, 3, 29, 4, 0), False),  # Sun 06:00 CEST: ends an hour earlier in UTC than in winter
    # New York falls back on 2026-11-01 (01:00-02:00 happens twice): both occurrences are inside 01:00-04:00.
    (NEW_YORK_EARLY, utc(2026, 11, 1, 5, 30), True),  # 01:30 EDT
    (NEW_YORK_EARLY, utc(2026, 11, 1, 6, 30), True),  # 01:30 EST (the repeated hour)
    (NEW_YORK_EARLY, utc(2026, 11, 1, 8, 59), True),  # 03:59 EST
    (NEW_YORK_EARLY, utc(2026, 11, 1, 9, 0), False),  # 04:00 EST
    (NEW_YORK_EARLY, utc(2026, 11, 1, 4, 59), False),  # 00:59 EDT
    # New York springs forward on 2026-03-08 (02:00 -> 03:00): the window is two hours long that night.
    (NEW_YORK_EARLY, utc(2026, 3, 8, 6, 0), True),  # 01:00 EST
    (NEW_YORK_EARLY, utc(2026, 3, 8, 7, 0), True),  # 03:00 EDT
    (NEW_YORK_EARLY, utc(2026, 3, 8, 8, 0), False),  # 04:00 EDT
    (WHOLE_SUNDAY, utc(2026, 3, 1, 0, 0), True),
    (WHOLE_SUNDAY, utc(2026, 3, 1, 23, 59), True),
    (WHOLE_SUNDAY, utc(2026, 3, 2, 0, 0), False),
]


@pytest.mark.parametrize(("window", "instant", "inside"), CASES)
def test_window_contains(window, instant, inside):
    assert BusinessHours.model_validate(window).contains(instant) is inside


@pytest.mark.parametrize(("window", "instant", "inside"), CASES)
def test_within_and_outside_hours_conditions(window, instant, inside):
    facts = build_facts(from_address="a@b.c", received_at=instant)
    within = evaluate_condition(Condition(field="received_at", operator="within_hours", value=window), facts)
    outside = evaluate_condition(Condition(field="received_at", operator="outside_hours", value=window), facts)
    assert within.matched is inside
    assert outside.matched is not inside
    assert window["timezone"] in within.why and ("within" if inside else "outside") in within.why


def test_reason_shows_the_local_time():
    facts = build_facts(from_address="a@b.c", received_at=utc(2026, 3, 2, 0, 30))
    result = evaluate_condition(Condition(field="received_at", operator="within_hours", value=TOKYO_OFFICE), facts)
    assert result.why == (
        "received 2026-03-02 09:30 mon (Asia/Tokyo), within mon,tue,wed,thu,fri 09:00-18:00 Asia/Tokyo"
    )


def test_naive_received_at_is_taken_as_utc():
    facts = build_facts(from_address="a@b.c", received_at=datetime(2026, 3, 2, 0, 30))
    assert facts.received_at.tzinfo is UTC


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"timezone": "Asia/Tokio"}, "unknown time zone"),
        ({"timezone": "../../etc/passwd"}, "unknown time zone"),
        ({"timezone": "/usr/share/zoneinfo/UTC"}, "unknown time zone"),
        ({"days": []}, "at least 1 item"),
        ({"days": ["mon", "mon"]}, "must not repeat"),
        ({"days": ["monday"]}, "mon"),
        ({"from": "9:00"}, "HH:MM"),
        ({"from": "24:00"}, "HH:MM"),
        ({"to": "18:60"}, "HH:MM"),
        ({"to": "09:00"}, "empty"),
        ({"extra": 1}, "Extra inputs"),
    ],
)
def test_invalid_windows_are_refused(change, message):
    with pytest.raises(ValidationError) as caught:
        BusinessHours.model_validate(TOKYO_OFFICE | change)
    assert message in str(caught.value)


def test_days_are_kept_in_week_order():
    hours = BusinessHours.model_validate(TOKYO_OFFICE | {"days": ["fri", "mon"]})
    assert hours.days == ["mon", "fri"]
    assert hours.model_dump(by_alias=True)["from"] == "09:00"
