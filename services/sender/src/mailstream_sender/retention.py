"""Retention of `sender_deliveries` (and of each record's bytes in `sender_mails`, deleted with it): final records
are deleted once they can no longer matter, by every replica, periodically (FerretDB v1 has no TTL indexes; one code
path serves both databases; a delete is idempotent, so replicas pruning at the same time only repeat each other's
work).

What a final (`sent`/`failed`) record protects, and so how long it must live:

- exactly-once: a copy of its command that arrives again (broker redelivery after a crash, the twin left by a
  retry republish whose ack was lost, inbox re-publishing its outbox) finds it and is re-reported, not re-sent.
  Such copies come within minutes; the last copy of a command that keeps being retried comes within its maximum
  age (`SENDER_MAX_AGE_SECONDS`) plus one retry tier (the largest, an hour): the smallest retention allowed.
- belt and braces: a command older than the retention is refused, never sent (`is_past_retention`, a guard step),
  so even a copy that turns up later than that cannot be sent twice: a record can only have been pruned if it was
  last written more than the retention ago, hence after its command was created more than the retention ago.
- bounce attribution: a bounce (a DSN to the VERP address) names only the message; the record gives its account
  and recipients. Hard failures come back within minutes or hours; a DSN later than the retention (e.g. a remote
  MTA's give-up after days of temporary failures) is logged and not counted towards a suppression. The default,
  72 hours, is the default maximum age (48 h) plus a day.

Records that are not final (`sending`, `deferred`) are never pruned: their commands are still being worked on.
"""

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from mailstream_common.periodic import run_every
from mailstream_common.topology import SENDER_REPLIES

from .repository import Deliveries

log = logging.getLogger(__name__)

RETRY_MARGIN_SECONDS = max(SENDER_REPLIES.retry_delays)
"""The longest a command waits on a retry tier: after the maximum age, one last copy may still be on its way."""


def minimum_retention_hours(max_age_seconds: float) -> float:
    return (max_age_seconds + RETRY_MARGIN_SECONDS) / 3600


def prune_cutoff(now: datetime, retention_hours: float) -> datetime:
    """Final records last written before this go."""
    return now - timedelta(hours=retention_hours)


def is_past_retention(occurred_at: datetime, now: datetime, retention_hours: float) -> bool:
    """True when a command is so old that its delivery record, had there been one, may have been pruned."""
    return occurred_at < prune_cutoff(now, retention_hours)


class Pruner:
    def __init__(self, deliveries: Deliveries, *, retention_hours: float, interval_seconds: float) -> None:
        self.deliveries = deliveries
        self.retention_hours = retention_hours
        self.interval_seconds = interval_seconds

    async def prune_once(self, now: datetime) -> int:
        """How many final records were deleted."""
        cutoff = prune_cutoff(now, self.retention_hours)
        deleted = await self.deliveries.delete_finished_before(cutoff)
        log.info("pruned delivery records past retention", extra={"deleted": deleted, "before": cutoff.isoformat()})
        return deleted

    async def run(self, stop: asyncio.Event, clock: Callable[[], datetime]) -> None:
        """Prune now and then every interval until `stop`."""
        await run_every(self.interval_seconds, stop, lambda: self.prune_once(clock()), name="prune delivery records")
