"""The background verifier: re-checks domains whose `next_check_at` has come.

Pending records are re-checked on a schedule that backs off from minutes to hours (DNS propagation takes up to
24-48 hours); verified domains are re-checked daily so sender stops signing if a record disappears. Every replica
runs it: each due check is taken by exactly one of them (`DomainRepository.take_due_check`), and key transitions are
conditional updates.
"""

import asyncio
import contextlib
import logging

from .manager import DomainManager
from .metrics import VERIFIER_ROUNDS

log = logging.getLogger(__name__)


class BackgroundVerifier:
    def __init__(self, manager: DomainManager, *, poll_seconds: float) -> None:
        self.manager = manager
        self.poll_seconds = poll_seconds
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="domains-verifier")

    async def _run(self) -> None:
        while not self._stop.is_set():
            try:
                checked = await self.manager.run_due_checks()
                VERIFIER_ROUNDS.labels("ok").inc()
                if checked:
                    log.info("scheduled checks done", extra={"domains": checked})
            except Exception:
                VERIFIER_ROUNDS.labels("failed").inc()
                log.exception("verifier round failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.poll_seconds)

    async def stop(self, grace: float) -> None:
        """Let a round in progress finish (it is short: DNS lookups are time-boxed), then stop."""
        self._stop.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, grace)
            except TimeoutError:
                log.warning("verifier round cancelled at shutdown")
