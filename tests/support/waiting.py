"""Wait on conditions, never on the clock alone."""

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def wait_for(
    probe: Callable[[], Awaitable[T | None]], *, timeout: float = 15.0, interval: float = 0.05, what: str = ""
) -> T:
    """Await `probe()` until it returns something truthy; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            result = await probe()
            if result:
                return result
        except AssertionError as exc:
            last_error = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or probe}") from last_error
        await asyncio.sleep(interval)


def wait_for_sync(probe: Callable[[], T | None], *, timeout: float = 15.0, interval: float = 0.05, what: str = "") -> T:
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or probe}")
        time.sleep(interval)
