"""When a failed delivery is tried again: exponential backoff with jitter over about three days.

Attempt 1 is immediate; after each failure the wait roughly doubles (5 s, 30 s, 2 min, 10 min, 30 min, 1 h, 2 h,
4 h, 8 h, 12 h, 24 h, 24 h: 3.15 days in all), each wait moved by up to +/-20 % so that the retries of many
deliveries that failed together (an endpoint outage) do not arrive together. After the last wait's attempt the
delivery is failed for good; it can still be replayed by hand.
"""

import random
from collections.abc import Sequence
from datetime import datetime, timedelta

DEFAULT_DELAYS: tuple[float, ...] = (5, 30, 120, 600, 1800, 3600, 7200, 14400, 28800, 43200, 86400, 86400)
JITTER = 0.2


def parse_delays(text: str) -> tuple[float, ...]:
    """`"5,30,120"` -> (5.0, 30.0, 120.0); the operator's `WEBHOOKS_RETRY_DELAYS`."""
    delays = tuple(float(part) for part in text.split(",") if part.strip())
    if not delays or any(d <= 0 for d in delays):
        raise ValueError("WEBHOOKS_RETRY_DELAYS must be a comma-separated list of positive seconds")
    return delays


def max_attempts(delays: Sequence[float]) -> int:
    """The first attempt plus one per wait."""
    return len(delays) + 1


def retry_delay(failed_attempts: int, delays: Sequence[float], rng: random.Random | None = None) -> float | None:
    """Seconds to wait after the `failed_attempts`-th failure, or None when the schedule is spent."""
    if failed_attempts < 1 or failed_attempts > len(delays):
        return None
    base = delays[failed_attempts - 1]
    spread = (rng or random).uniform(-JITTER, JITTER)
    return base * (1 + spread)


def next_attempt_at(now: datetime, failed_attempts: int, delays: Sequence[float]) -> datetime | None:
    delay = retry_delay(failed_attempts, delays)
    return None if delay is None else now + timedelta(seconds=delay)
