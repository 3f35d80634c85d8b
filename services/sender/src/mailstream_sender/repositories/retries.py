"""Database writes retried on connection errors: losing the write that records `sent` would make the redelivered
command send the mail again."""

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from pymongo.errors import AutoReconnect, NetworkTimeout

T = TypeVar("T")


async def with_retries(operation: Callable[[], Awaitable[T]], attempts: int = 8) -> T:
    """Run a database write, retrying connection errors with a short jittered backoff (a few seconds in all)."""
    delay = 0.02
    for attempt in range(1, attempts + 1):
        try:
            return await operation()
        except (AutoReconnect, NetworkTimeout):
            if attempt == attempts:
                raise
            await asyncio.sleep(delay * (1 + random.random()))  # noqa: S311 - jitter, not crypto
            delay = min(delay * 2, 0.5)
    raise AssertionError("unreachable")
