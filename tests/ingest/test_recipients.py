"""Which RCPT TO is ours: the stream cache (events, TTLs, versions) and the directory (streams and VERP)."""

import asyncio

import pytest

from mailstream_common import verp
from mailstream_common.contracts import StreamChanged
from mailstream_ingest.recipients import (
    Bounce,
    LookupUnavailable,
    RecipientDirectory,
    Route,
    Stream,
    StreamCache,
    Unknown,
)
from tests.ingest.fakes import DOMAIN, SECRET, Clock, FakeStreams, target

_versions: dict[str, int] = {}


def event(change: str, address: str, stream_id: str = "s1", version: int | None = None) -> StreamChanged:
    """A stream event; each call is the stream's next version unless `version` is given."""
    if version is None:
        version = _versions[stream_id] = _versions.get(stream_id, 0) + 1
    return StreamChanged(
        change=change, version=version, account_id="a1", topic_id="t1", stream_id=stream_id,
        address="support@acme.example", forwarding_address=address, allow_agent_send=True,
        deleted=change == "deleted",
    )  # fmt: skip


@pytest.fixture
def setup():
    clock, streams = Clock(), FakeStreams()
    cache = StreamCache(streams, positive_ttl=60, negative_ttl=5, clock=clock)
    return clock, streams, cache


async def test_miss_is_remembered_briefly(setup):
    clock, streams, cache = setup
    assert await cache.find("x@in.mailstream.test") is None
    assert await cache.find("X@IN.mailstream.test") is None
    assert streams.reads == 1
    clock.now += 6
    streams.live["x@in.mailstream.test"] = target("x@in.mailstream.test")
    assert await cache.find("x@in.mailstream.test") is not None
    assert streams.reads == 2


async def test_created_event_overrides_a_remembered_miss_and_deleted_event_a_hit(setup):
    _, streams, cache = setup
    assert await cache.find("x@in.mailstream.test") is None
    cache.apply(event("created", "x@in.mailstream.test"))
    found = await cache.find("x@in.mailstream.test")
    assert found is not None and found.stream_address == "support@acme.example"
    cache.apply(event("deleted", "x@in.mailstream.test"))
    assert await cache.find("x@in.mailstream.test") is None
    assert streams.reads == 1


async def test_hit_is_reread_after_its_ttl(setup):
    clock, streams, cache = setup
    cache.apply(event("created", "x@in.mailstream.test"))
    clock.now += 61
    assert await cache.find("x@in.mailstream.test") is None  # deleted while an event was lost
    assert streams.reads == 1


async def test_updated_event_moves_the_stream_to_its_new_address(setup):
    _, _, cache = setup
    cache.apply(event("created", "old@in.mailstream.test"))
    cache.apply(event("updated", "new@in.mailstream.test"))
    assert await cache.find("new@in.mailstream.test") is not None
    assert cache._live.get("old@in.mailstream.test") is None


async def test_database_down_is_lookup_unavailable(setup):
    _, streams, cache = setup
    streams.down = True
    with pytest.raises(LookupUnavailable):
        await cache.find("x@in.mailstream.test")


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        (verp.encode_bounce_address("abc123", SECRET, DOMAIN), Bounce("abc123")),
        (verp.encode_bounce_address("abc123", b"other secret", DOMAIN), Unknown()),
        (verp.encode_bounce_address("abc123", SECRET, "elsewhere.example"), Unknown()),
        ("fwd@in.mailstream.test", Stream(target("fwd@in.mailstream.test"))),
        ("FWD@In.Mailstream.Test", Stream(target("fwd@in.mailstream.test"))),
        ("fwd+ms-abcdefgh2345@in.mailstream.test", Stream(target("fwd@in.mailstream.test"))),  # reply token
        ("other+ms-abcdefgh2345@in.mailstream.test", Unknown()),
        ("postmaster", Unknown()),
        ("someone@gmail.com", Unknown()),
    ],
)
async def test_directory(setup, address, expected):
    _, streams, cache = setup
    streams.live["fwd@in.mailstream.test"] = target("fwd@in.mailstream.test")
    directory = RecipientDirectory(cache, verp_secret=SECRET, bounce_domain=DOMAIN)
    assert await directory.resolve(address) == expected


async def test_an_older_or_repeated_event_does_not_undo_a_newer_one(setup):
    _, _, cache = setup
    created = event("created", "x@in.mailstream.test", stream_id="s-order", version=1)
    deleted = event("deleted", "x@in.mailstream.test", stream_id="s-order", version=2)
    cache.apply(deleted)
    cache.apply(created)  # arrives late (another queue, a redelivery): ignored
    assert await cache.find("x@in.mailstream.test") is None
    cache.apply(deleted)  # a duplicate: nothing changes
    assert await cache.find("x@in.mailstream.test") is None


async def test_a_lookup_that_raced_an_event_does_not_overwrite_it(setup):
    """The projection read started before the stream's creation event and answers "unknown" after it: the event
    wins, and the miss is not remembered."""
    _, streams, cache = setup
    started, release = asyncio.Event(), asyncio.Event()
    slow_reads = streams.__call__

    async def slow(address: str):
        started.set()
        await release.wait()
        return await slow_reads(address)

    cache._lookup = slow
    finding = asyncio.create_task(cache.find("race@in.mailstream.test"))
    await started.wait()
    cache.apply(event("created", "race@in.mailstream.test", stream_id="s-race"))
    release.set()
    found = await finding
    assert found is not None and found.stream_id == "s-race"
    assert await cache.find("race@in.mailstream.test") is not None


async def test_an_event_older_than_what_the_projection_said_is_ignored(setup):
    """A fresh replica learns a deleted stream (version 2) from the projection; the creation event (version 1)
    delivered late to its replica queue must not make the address acceptable."""
    _, _, cache = setup
    deleted_target = target("gone@in.mailstream.test", stream_id="s-gone")

    async def projection(address: str) -> Route | None:
        return Route(deleted_target, 2, live=False) if address == "gone@in.mailstream.test" else None

    cache._lookup = projection
    assert await cache.find("gone@in.mailstream.test") is None
    cache.apply(event("created", "gone@in.mailstream.test", stream_id="s-gone", version=1))
    assert await cache.find("gone@in.mailstream.test") is None
