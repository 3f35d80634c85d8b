"""Retention: runs and auto-reply claims are deleted once they no longer matter, by every replica, periodically.

What each record protects, and so how long it must live:

- a run (`automation_runs`) is the exactly-once record of (rule, message): a redelivered message finds it and does
  not act twice. Redelivery ends within the hour (the retry tiers; then the dead-letter queue), so the retention
  (>= 1 day, 30 by default) is far longer than a run is needed for that; after it, a run is history only.
- an auto-reply claim (`automation_reply_claims`) is the rate limit: a claim older than the interval lets the next
  message claim anew, exactly as a missing one does. Claims are kept for the longer of the interval and the
  retention, so that lengthening the interval later does not forget a recent reply.
- loop protection looks at the message's own headers only: it keeps no records.

A deletion is idempotent, so replicas pruning at the same time only repeat each other's work. It is a periodic
delete rather than a TTL index because FerretDB v1 has no TTL indexes, and one code path serves both databases.
"""

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from mailstream_common.periodic import run_every

from .repository import RunsRepository

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Cutoffs:
    runs_before: datetime
    claims_before: datetime


def cutoffs(now: datetime, *, retention_days: float, auto_reply_interval_hours: float) -> Cutoffs:
    retention = timedelta(days=retention_days)
    return Cutoffs(
        runs_before=now - retention,
        claims_before=now - max(retention, timedelta(hours=auto_reply_interval_hours)),
    )


class Pruner:
    def __init__(
        self, runs: RunsRepository, *, retention_days: float, auto_reply_interval_hours: float, interval_seconds: float
    ) -> None:
        self.runs = runs
        self.retention_days = retention_days
        self.auto_reply_interval_hours = auto_reply_interval_hours
        self.interval_seconds = interval_seconds

    async def prune_once(self, now: datetime) -> tuple[int, int]:
        """(runs deleted, claims deleted)."""
        limits = cutoffs(
            now, retention_days=self.retention_days, auto_reply_interval_hours=self.auto_reply_interval_hours
        )
        runs = await self.runs.delete_runs_before(limits.runs_before)
        claims = await self.runs.delete_reply_claims_before(limits.claims_before)
        log.info("pruned past retention", extra={"runs": runs, "reply_claims": claims, "before": limits.runs_before})
        return runs, claims

    async def run(self, stop: asyncio.Event, clock: Callable[[], datetime]) -> None:
        """Prune now and then every interval until `stop`."""
        await run_every(self.interval_seconds, stop, lambda: self.prune_once(clock()), name="prune automation runs")
