"""Chores a service runs in the background on an interval (pruning records past their retention, ...)."""

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


async def run_every(
    interval_seconds: float, stop: asyncio.Event, chore: Callable[[], Awaitable[object]], *, name: str
) -> None:
    """Run `chore` now and then every `interval_seconds` until `stop` is set.

    A failing run is logged and tried again at the next interval: a chore must never take its service down.
    """
    while not stop.is_set():
        try:
            await chore()
        except Exception:
            log.exception("periodic chore failed; trying again at the next interval", extra={"chore": name})
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval_seconds)
