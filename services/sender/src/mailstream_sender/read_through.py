"""A read-through cache for the sender's lookups (stream records, suppressions, signing keys).

Concurrent misses of one key share one load, and an invalidation also disowns a load in flight, whose result may
predate the change it was told about: the callers already waiting get that result (they raced the change anyway),
but it is not kept.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from .metrics import CACHE_INVALIDATIONS, CACHE_LOOKUPS

K = TypeVar("K")
V = TypeVar("V")


class CacheLoadAbandoned(RuntimeError):
    """The load this caller was waiting on was cancelled (shutdown): the command is retried later."""


@dataclass(frozen=True)
class _Entry(Generic[V]):
    value: V
    expires_at: float


class ReadThroughCache(Generic[K, V]):
    """key -> `load(key)`, kept `ttl_seconds` (0: never kept; loads are still shared), at most `max_entries` (the
    oldest go first)."""

    def __init__(
        self,
        name: str,
        load: Callable[[K], Awaitable[V]],
        *,
        ttl_seconds: float,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self._load = load
        self._ttl = ttl_seconds
        self._max_entries = max_entries
        self._clock = clock
        self._entries: dict[K, _Entry[V]] = {}
        self._loads: dict[K, asyncio.Future[V]] = {}

    async def get(self, key: K) -> V:
        entry = self._entries.get(key)
        if entry is not None and entry.expires_at > self._clock():
            CACHE_LOOKUPS.labels(self.name, "hit").inc()
            return entry.value
        if (pending := self._loads.get(key)) is not None:
            CACHE_LOOKUPS.labels(self.name, "shared").inc()
            return await asyncio.shield(pending)
        CACHE_LOOKUPS.labels(self.name, "miss").inc()
        future: asyncio.Future[V] = asyncio.get_running_loop().create_future()
        self._loads[key] = future
        try:
            value = await self._load(key)
        except BaseException as exc:
            if self._loads.get(key) is future:
                del self._loads[key]
            failure = (
                CacheLoadAbandoned(f"{self.name} load cancelled") if isinstance(exc, asyncio.CancelledError) else exc
            )
            future.set_exception(failure)
            future.exception()  # mark retrieved: the waiters (if any) raise it themselves
            raise
        if self._loads.get(key) is future:  # not invalidated while loading: the value is current enough to keep
            del self._loads[key]
            self._store(key, value)
        future.set_result(value)
        return value

    def invalidate(self, key: K) -> None:
        self._entries.pop(key, None)
        self._loads.pop(key, None)
        CACHE_INVALIDATIONS.labels(self.name).inc()

    def invalidate_where(self, matches: Callable[[K], bool]) -> None:
        """Invalidate every key, kept or loading, that `matches`."""
        for key in [k for k in {*self._entries, *self._loads} if matches(k)]:
            self.invalidate(key)

    def _store(self, key: K, value: V) -> None:
        if self._ttl <= 0 or self._max_entries <= 0:
            return
        self._entries.pop(key, None)  # re-inserted at the end: insertion order is age order
        self._entries[key] = _Entry(value, self._clock() + self._ttl)
        while len(self._entries) > self._max_entries:
            del self._entries[next(iter(self._entries))]

    def __len__(self) -> int:
        return len(self._entries)
