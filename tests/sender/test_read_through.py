"""The read-through cache behind the stream, suppression and signing-key lookups: lifetime, shared loads,
invalidation while a load is in flight, bounds. Plain logic, no I/O."""

import asyncio

import pytest

from mailstream_sender.read_through import CacheLoadAbandoned, ReadThroughCache


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Source:
    """A loader whose answers the test sets, counting loads; `gate` (when set) holds every load until opened."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}
        self.loads: list[str] = []
        self.gate: asyncio.Event | None = None

    async def load(self, key: str) -> str:
        self.loads.append(key)
        value = self.values.get(key, "absent")  # read before waiting: what the database said when asked
        if self.gate is not None:
            await self.gate.wait()
        return value


def cache(source: Source, clock: Clock, ttl: float = 10, max_entries: int = 100) -> ReadThroughCache[str, str]:
    return ReadThroughCache("test", source.load, ttl_seconds=ttl, max_entries=max_entries, clock=clock)


async def test_a_value_is_kept_for_its_lifetime_then_loaded_again():
    source, clock = Source(), Clock()
    streams = cache(source, clock)
    source.values["s1"] = "v1"
    assert await streams.get("s1") == "v1"
    source.values["s1"] = "v2"
    clock.now += 9.9
    assert await streams.get("s1") == "v1"  # still within the lifetime: no second load
    clock.now += 0.2
    assert await streams.get("s1") == "v2"
    assert source.loads == ["s1", "s1"]


async def test_an_absent_answer_is_kept_too():
    source, clock = Source(), Clock()
    streams = cache(source, clock)
    assert await streams.get("gone") == "absent"
    assert await streams.get("gone") == "absent"
    assert source.loads == ["gone"]


async def test_invalidation_makes_the_next_get_load():
    source, clock = Source(), Clock()
    streams = cache(source, clock)
    source.values["s1"] = "v1"
    await streams.get("s1")
    source.values["s1"] = "v2"
    streams.invalidate("s1")
    assert await streams.get("s1") == "v2"
    streams.invalidate("never-cached")  # harmless
    assert len(streams) == 1


async def test_concurrent_misses_share_one_load():
    source, clock = Source(), Clock()
    source.gate = asyncio.Event()
    source.values["s1"] = "v1"
    streams = cache(source, clock)
    waiting = [asyncio.create_task(streams.get("s1")) for _ in range(5)]
    await asyncio.sleep(0)
    source.gate.set()
    assert await asyncio.gather(*waiting) == ["v1"] * 5
    assert source.loads == ["s1"]


async def test_a_load_that_started_before_an_invalidation_is_not_kept():
    """The event says the stream changed; a load that read the old document must not outlive the event."""
    source, clock = Source(), Clock()
    source.gate = asyncio.Event()
    source.values["s1"] = "before"
    streams = cache(source, clock)
    in_flight = asyncio.create_task(streams.get("s1"))
    await asyncio.sleep(0)  # the load has read "before" and waits
    source.values["s1"] = "after"
    streams.invalidate("s1")
    later = asyncio.create_task(streams.get("s1"))  # does not join the disowned load
    source.gate.set()
    assert await in_flight == "before"  # raced the change: it gets what was read
    assert await later == "after"
    source.gate = None
    assert await streams.get("s1") == "after"  # and "before" was never kept
    assert source.loads == ["s1", "s1"]


async def test_a_failed_load_reaches_every_waiter_and_is_not_kept():
    clock = Clock()
    attempts = []

    async def failing(key: str) -> str:
        attempts.append(key)
        await asyncio.sleep(0)
        if len(attempts) == 1:
            raise ConnectionError("database down")
        return "v"

    streams = ReadThroughCache("test", failing, ttl_seconds=10, clock=clock)
    results = await asyncio.gather(streams.get("s1"), streams.get("s1"), return_exceptions=True)
    assert [type(r) for r in results] == [ConnectionError, ConnectionError]
    assert await streams.get("s1") == "v"  # the failure was not remembered


async def test_waiters_of_a_cancelled_load_get_an_error_not_a_cancellation():
    source, clock = Source(), Clock()
    source.gate = asyncio.Event()
    streams = cache(source, clock)
    loader = asyncio.create_task(streams.get("s1"))
    await asyncio.sleep(0)
    waiter = asyncio.create_task(streams.get("s1"))
    await asyncio.sleep(0)
    loader.cancel()
    with pytest.raises(CacheLoadAbandoned):
        await waiter  # its own task was not cancelled: it fails (and the command is retried) instead


async def test_lifetime_zero_keeps_nothing():
    source, clock = Source(), Clock()
    streams = cache(source, clock, ttl=0)
    await streams.get("s1")
    await streams.get("s1")
    assert source.loads == ["s1", "s1"] and len(streams) == 0


async def test_the_oldest_entries_go_beyond_the_bound():
    source, clock = Source(), Clock()
    streams = cache(source, clock, max_entries=2)
    for key in ("a", "b", "c"):
        await streams.get(key)
    assert len(streams) == 2
    await streams.get("b")
    await streams.get("c")
    await streams.get("a")  # "a" was evicted: loaded again
    assert source.loads == ["a", "b", "c", "a"]


async def test_invalidate_where_drops_matching_entries_and_loads_in_flight_only():
    """How a signing key is dropped for every account of a rotated domain, even while it is being fetched."""
    source, clock = Source(), Clock()
    keys = cache(source, clock)
    source.values.update({"acme.test|a1": "old", "acme.test|a2": "old", "other.test|a1": "kept"})
    for key in ("acme.test|a2", "other.test|a1"):
        await keys.get(key)
    source.gate = asyncio.Event()
    fetching = asyncio.create_task(keys.get("acme.test|a1"))
    await asyncio.sleep(0)  # the load has read "old" and waits

    source.values.update({"acme.test|a1": "new", "acme.test|a2": "new"})
    keys.invalidate_where(lambda key: key.startswith("acme.test|"))
    source.gate.set()
    assert await fetching == "old"  # the caller raced the rotation; its answer is not kept
    assert await keys.get("acme.test|a1") == "new"
    assert await keys.get("acme.test|a2") == "new"
    assert await keys.get("other.test|a1") == "kept"
    assert source.loads.count("other.test|a1") == 1
