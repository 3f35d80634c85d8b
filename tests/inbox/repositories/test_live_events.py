"""The live-event journal on the real database: one entry per event whichever replicas write it, retention by a
TTL index on what each replica writes, and the spans that tell a complete replay from one across a gap.

Each test drives `LiveJournal` instances (stand-ins for gateway replicas) with a clock of its own, on a database of
its own; the HTTP behaviour is in test_replay.py.
"""

import asyncio
import uuid

import pytest
from pymongo.errors import AutoReconnect

from mailstream_common.mongo import ensure_indexes
from mailstream_inbox.live_hub import LiveEvent
from mailstream_inbox.live_journal import LiveJournal, event_key, position_key, to_micros
from mailstream_inbox.repositories import live_events as live_events_repo

T0 = 1_800_000_000.0


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def replica(db, clock: Clock, *, retention: float = 60, replay_max: int = 100) -> LiveJournal:
    return LiveJournal(db, retention_seconds=retention, replay_max=replay_max, clock=clock)


def live_event(status: str = "open") -> LiveEvent:
    event_id = uuid.uuid4().hex
    return LiveEvent("conversation.changed", event_id, {"conversation_id": "c1", "status": status}, event_id)


async def test_replicas_journal_an_event_once_and_agree_on_its_id(mongo_db):
    a, b = replica(mongo_db, Clock(T0)), replica(mongo_db, Clock(T0 + 0.25))
    event = live_event()
    first = await a.record("acct", event)
    second = await b.record("acct", event)
    assert first.id == second.id == event_key(to_micros(T0), event.event_id), "the first write's key wins"
    assert (first.name, first.data, first.event_id) == (event.name, event.data, event.event_id)

    both_at_once = live_event()
    ids = {e.id for e in await asyncio.gather(a.record("acct", both_at_once), b.record("acct", both_at_once))}
    assert len(ids) == 1
    assert await mongo_db[live_events_repo.LIVE_EVENTS].count_documents({"account_id": "acct"}) == 2

    # The same event id under another account is that account's own entry, never the first one read back.
    elsewhere = await b.record("other", event)
    assert elsewhere.id.endswith(event.event_id) and elsewhere.id > second.id, "b's own, later key"
    assert await mongo_db[live_events_repo.LIVE_EVENTS].count_documents({}) == 3


async def test_replay_is_the_accounts_entries_after_the_cursor_in_key_order(mongo_db):
    clock = Clock(T0)
    journal = replica(mongo_db, clock)
    await journal.open()
    recorded = []
    for i in range(5):
        clock.now = T0 + i
        recorded.append(await journal.record("acct", live_event(f"s{i}")))
        await journal.record("intruder", live_event(f"x{i}"))
    clock.now = T0 + 10
    replay = await journal.replay("acct", recorded[1].id)
    assert replay.resync is None
    assert replay.after == recorded[1].id
    assert [e.id for e in replay.events] == [e.id for e in recorded[2:]]
    assert [e.data["status"] for e in replay.events] == ["s2", "s3", "s4"]
    assert [e.event_id for e in replay.events] == [e.event_id for e in recorded[2:]]
    assert (await journal.replay("acct", recorded[-1].id)).events == []
    everything = await journal.replay("acct", position_key(to_micros(T0)))
    assert [e.data["status"] for e in everything.events] == ["s0", "s1", "s2", "s3", "s4"]

    journal.replay_max = 2
    assert (await journal.replay("acct", recorded[1].id)).resync == "too_many_missed"
    assert (await journal.replay("acct", recorded[2].id)).resync is None


async def test_a_burst_within_one_clock_tick_keeps_its_order(mongo_db):
    journal = replica(mongo_db, Clock(T0))  # the clock does not move at all
    burst = [await journal.record("acct", live_event(f"s{i}")) for i in range(20)]
    assert [e.id for e in burst] == sorted(e.id for e in burst)
    replay = await journal.replay("acct", position_key(to_micros(T0)))
    assert [e.data["status"] for e in replay.events] == [f"s{i}" for i in range(20)]


async def test_retention_is_a_ttl_index_on_the_expiry_each_replica_writes(mongo_db):
    await ensure_indexes(mongo_db, live_events_repo.INDEXES)
    for collection, name in (
        (live_events_repo.LIVE_EVENTS, "live_events_expiry"),
        (live_events_repo.WRITERS, "live_event_writers_expiry"),
    ):
        index = (await mongo_db[collection].index_information())[name]
        assert (index["key"], index["expireAfterSeconds"]) == ([("expires_at", 1)], 0)

    clock = Clock(T0)
    journal = replica(mongo_db, clock, retention=60)
    await journal.open()
    old = await journal.record("acct", live_event("old"))
    clock.now = T0 + 5
    await journal.heartbeat()
    entry = await mongo_db[live_events_repo.LIVE_EVENTS].find_one({"key": old.id})
    assert entry["expires_at"].timestamp() == T0 + 60
    span = await mongo_db[live_events_repo.WRITERS].find_one({"_id": journal.writer_id})
    assert span["expires_at"].timestamp() == T0 + 5 + 60, "a span lives on as long as its last heartbeat"

    clock.now = T0 + 70  # the database may not have deleted it yet: the cursor's age alone says "expired"
    assert (await journal.replay("acct", old.id)).resync == "expired"


async def test_a_replay_across_a_time_no_replica_was_journaling_asks_to_resync(mongo_db):
    clock_a, clock_b = Clock(T0), Clock(T0)
    a = replica(mongo_db, clock_a)
    await a.open()
    before = await a.record("acct", live_event("before the outage"))
    clock_a.now = T0 + 5
    await a.heartbeat()
    clock_a.now = T0 + 10
    await a.close()  # graceful stop: its span ends exactly here

    clock_b.now = T0 + 40  # nothing ran for 30 s: events published then reached no gateway
    b = replica(mongo_db, clock_b)
    await b.open()
    after = await b.record("acct", live_event("after"))
    clock_b.now = T0 + 45
    assert (await b.replay("acct", before.id)).resync == "gap"
    assert (await b.replay("acct", position_key(to_micros(T0 + 39.5)))).resync is None, "within the slack"
    replay = await b.replay("acct", position_key(to_micros(T0 + 40)))
    assert [e.id for e in replay.events] == [after.id]


async def test_a_replica_that_stops_heartbeating_covers_only_a_short_while(mongo_db):
    clock_a, clock_b = Clock(T0), Clock(T0)
    a = replica(mongo_db, clock_a)
    await a.open()
    first = await a.record("acct", live_event())
    clock_a.now = T0 + 5
    await a.heartbeat()  # then it crashes: no close()

    b = replica(mongo_db, clock_b)
    clock_b.now = T0 + 12  # a's last heartbeat is recent enough to count it alive
    await b.open()
    assert (await b.replay("acct", first.id)).resync is None
    b2 = replica(mongo_db, clock_b)
    clock_b.now = T0 + 5 + a.alive_tolerance_seconds + 10  # too late: a is not trusted that long
    await b2.open()
    assert (await b2.replay("acct", first.id)).resync == "gap"


async def test_a_failed_write_still_reaches_live_clients_but_ends_the_span(mongo_db, monkeypatch):
    clock = Clock(T0)
    journal = replica(mongo_db, clock)
    await journal.open()
    before = await journal.record("acct", live_event("before"))

    async def refused(*args, **kwargs):
        raise AutoReconnect("database went away")

    clock.now = T0 + 1
    with monkeypatch.context() as patch:
        patch.setattr(live_events_repo, "record", refused)
        lost = live_event("lost")
        delivered = await journal.record("acct", lost)
    assert delivered.id == event_key(to_micros(T0 + 1), lost.event_id), "a key of this replica's clock"
    clock.now = T0 + 2
    unwritten = await journal.record("acct", live_event("paused"))  # not even tried while the database recovers
    assert (await journal.replay("acct", before.id)).resync == "gap", "at once, not only after the next heartbeat"
    entry = live_events_repo.entry_id("acct", unwritten.event_id)
    assert await mongo_db[live_events_repo.LIVE_EVENTS].find_one({"_id": entry}) is None

    clock.now = T0 + 8  # heartbeat: a new span starts; the old one ended before the failure
    await journal.heartbeat()
    after = await journal.record("acct", live_event("after"))
    clock.now = T0 + 9
    assert (await journal.replay("acct", before.id)).resync == "gap", "the lost event may have been missed"
    replay = await journal.replay("acct", position_key(to_micros(T0 + 8)))
    assert [e.id for e in replay.events] == [after.id]


@pytest.mark.parametrize("last_event_id", ["nope", event_key(to_micros(T0 + 7200), "future")])
async def test_ids_that_are_not_cursors_ask_to_resync_without_a_query(mongo_db, last_event_id):
    journal = replica(mongo_db, Clock(T0))
    assert (await journal.replay("acct", last_event_id)).resync == "invalid_last_event_id"
    assert (await journal.replay("acct", None)).resync is None


async def test_recent_events_are_replayed_from_memory_older_ones_from_the_database(mongo_db):
    clock = Clock(T0)
    journal = replica(mongo_db, clock)
    await journal.open()
    clock.now = T0 + 5
    recent = [await journal.record("acct", live_event(f"s{i}")) for i in range(2)]
    await mongo_db[live_events_repo.LIVE_EVENTS].delete_many({})  # only memory still has them
    clock.now = T0 + 6
    from_memory = await journal.replay("acct", position_key(to_micros(T0 + 3)))
    assert [e.id for e in from_memory.events] == [e.id for e in recent]
    # A cursor from before this replica was complete (another replica's, say) is answered by the database.
    assert (await journal.replay("acct", position_key(to_micros(T0 + 0.5)))).events == []


async def test_a_broker_interruption_ends_what_memory_and_the_span_can_promise(mongo_db):
    clock, up = Clock(T0), [True]
    journal = LiveJournal(mongo_db, retention_seconds=60, replay_max=100, clock=clock, receiving=lambda: up[0])
    await journal.open()
    clock.now = T0 + 3
    seen = await journal.record("acct", live_event("seen"))
    clock.now = T0 + 5
    await journal.heartbeat()

    clock.now = T0 + 6
    up[0] = False
    journal.receiving_interrupted()
    clock.now = T0 + 10
    await journal.heartbeat()  # not receiving: the span is not extended over the outage
    clock.now = T0 + 20
    up[0] = True
    journal.receiving_resumed()
    clock.now = T0 + 25
    await journal.heartbeat()  # a new span from here
    after = await journal.record("acct", live_event("after"))
    clock.now = T0 + 30
    assert (await journal.replay("acct", seen.id)).resync == "gap", "events published at T0+6..20 never arrived"
    replay = await journal.replay("acct", position_key(to_micros(T0 + 22.5)))
    assert [e.id for e in replay.events] == [after.id]
    spans = await live_events_repo.spans(mongo_db)
    assert sorted((s["started_at"].timestamp(), s["seen_at"].timestamp(), s["stopped"]) for s in spans) == [
        (T0, T0 + 5, True),
        (T0 + 25, T0 + 25, False),
    ]
