"""The retry schedule: about three days, exponential, jittered within +/-20 %, then spent."""

import random

import pytest

from mailstream_inbox.webhooks.schedule import DEFAULT_DELAYS, max_attempts, parse_delays, retry_delay


def test_the_default_schedule_spans_about_three_days_and_grows():
    total = sum(DEFAULT_DELAYS)
    assert 2.5 * 86400 < total < 3.5 * 86400
    assert list(DEFAULT_DELAYS) == sorted(DEFAULT_DELAYS)
    assert max_attempts(DEFAULT_DELAYS) == len(DEFAULT_DELAYS) + 1


@pytest.mark.parametrize("failed", range(1, len(DEFAULT_DELAYS) + 1))
def test_each_wait_is_jittered_within_20_percent(failed):
    rng = random.Random(failed)
    waits = [retry_delay(failed, DEFAULT_DELAYS, rng) for _ in range(200)]
    base = DEFAULT_DELAYS[failed - 1]
    assert all(0.8 * base <= w <= 1.2 * base for w in waits)
    assert len({round(w, 6) for w in waits}) > 100  # jittered, not constant


def test_the_schedule_is_spent_after_the_last_wait():
    assert retry_delay(len(DEFAULT_DELAYS) + 1, DEFAULT_DELAYS) is None
    assert retry_delay(0, DEFAULT_DELAYS) is None


@pytest.mark.parametrize(
    ("text", "expected"), [("5,30,120", (5.0, 30.0, 120.0)), ("0.5, 1", (0.5, 1.0)), ("1,", (1.0,))]
)
def test_the_operator_schedule_parses(text, expected):
    assert parse_delays(text) == expected


@pytest.mark.parametrize("text", ["", "0", "5,-1", ","])
def test_a_bad_operator_schedule_is_refused(text):
    with pytest.raises(ValueError, match="WEBHOOKS_RETRY_DELAYS"):
        parse_delays(text)
