"""The frame every service's `main` runs in: logging, signals, and a stop event for graceful shutdown."""

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable

from .logs import configure_logging
from .tracing import configure_tracing

log = logging.getLogger(__name__)


def run(
    name: str,
    main: Callable[[asyncio.Event], Awaitable[None]],
    *,
    log_level: str = "INFO",
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
) -> None:
    """Run `main(stop)` until it returns; SIGTERM or SIGINT sets `stop`, and `main` then drains and returns.

    `loop_factory` picks another event loop implementation (ingest runs on uvloop); None is asyncio's own."""
    configure_logging(name, log_level)
    configure_tracing(name)  # off unless the standard OTEL_* variables ask for it

    async def _runner() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        log.info("starting")
        await main(stop)
        log.info("stopped")

    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(_runner())
