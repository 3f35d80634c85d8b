"""The delay ladder's choice of rung (pure)."""

import pytest

from mailstream_common import topology
from mailstream_common.delays import is_due, ladder_tier

TIERS = (1, 5, 30, 120)


@pytest.mark.parametrize(
    ("remaining", "tier"),
    [(0.2, 1), (1, 1), (4.9, 1), (5, 5), (29, 5), (30, 30), (119.9, 30), (120, 120), (10_000, 120)],
)
def test_a_message_takes_the_largest_rung_that_does_not_overshoot(remaining, tier):
    assert ladder_tier(remaining, TIERS) == tier


def test_the_rungs_need_not_be_given_in_order():
    assert ladder_tier(31, (120, 1, 30, 5)) == 30


def test_a_week_climbs_down_in_few_hops_and_never_passes_its_time():
    remaining, hops = 7 * 24 * 3600.0, 0
    while not is_due(remaining):
        remaining -= ladder_tier(remaining, topology.TIMER_LADDER)
        hops += 1
        assert remaining > -1  # at most the smallest rung late
    assert hops <= 7 + len(topology.TIMER_LADDER) * 6


def test_due_is_now_or_past():
    assert is_due(0) and is_due(-3) and not is_due(0.01)


def test_the_timer_queue_retries_through_its_ladder():
    assert topology.INBOX_TIMERS.retry_delays == topology.TIMER_LADDER
    assert topology.INBOX_TIMERS in topology.WORK_QUEUES
