"""Replay for reconnecting SSE clients: the journal of live events, their ids, and when a replay can be trusted.

An SSE `id:` is a journal key, `<16-digit epoch microseconds>-<event id>`: the time the first gateway replica
journaled the event (strictly increasing per replica, so a burst keeps its order), then its id as the tie-break.
Keys sort as strings in journal order, so "everything after this id" is one range query per account, and every
replica hands out the same id for the same event (the first write wins and the others read its key back).

`GET /v1/events` with `Last-Event-ID` replays the account's entries after that key. Recent ones come from this
replica's memory (`RecentEvents`: what it fanned out since it started receiving, so no query at all); older ones,
or a client coming from a replica that started earlier, from the database (the `(account_id, key)` index). When it cannot promise the replay is complete, it sends a `resync` event instead (the client reloads
what it shows over the REST API):

- `invalid_last_event_id`: not an id of this form, or one from the future;
- `expired`: older than `INBOX_EVENTS_RETENTION_SECONDS` (the journal no longer holds what came after it);
- `gap`: at some moment since then no gateway was journaling (none was running, the database refused the
  writes, or the broker connection was down), so events published then are not in the journal;
- `too_many_missed`: more than `INBOX_EVENTS_REPLAY_MAX` events to replay;
- `journal_unavailable`: the database did not answer.
"""

import asyncio
import hashlib
import logging
import re
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

import pymongo
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from .live_hub import LiveEvent
from .repositories import live_events as live_events_repo

log = logging.getLogger(__name__)

_KEY = re.compile(r"([0-9]{16})-([0-9A-Za-z_-]{1,64})")  # ASCII digits: `\d` matches every script
_EVENT_ID = re.compile(r"[0-9A-Za-z_-]{1,64}")
MAX_LAST_EVENT_ID_LENGTH = 100
FUTURE_TOLERANCE_SECONDS = 60.0  # a cursor further ahead than this was not issued by a replica with a sane clock
SPAN_SLACK_SECONDS = 1.0  # replicas' clocks differ a little; spans that nearly touch cover the moment between
# An event published just before a replica bound its queue may be journaled (by another replica) just after: the
# replica's memory answers only for cursors at least this much younger than the moment it became complete.
MEMORY_SLACK_SECONDS = 2.0

RESYNC_REASONS = {
    "invalid_last_event_id": "Last-Event-ID is not an id this API issued",
    "expired": "Last-Event-ID is older than the replay window",
    "gap": "events published since Last-Event-ID were not all recorded (no gateway was recording for a while)",
    "too_many_missed": "more events were missed than are replayed",
    "journal_unavailable": "the event journal could not be read",
}


# --- pure: keys, cursors, coverage ---


def to_micros(epoch_seconds: float) -> int:
    return int(epoch_seconds * 1_000_000)


def event_key(epoch_us: int, event_id: str) -> str:
    """The journal key and SSE id of an event journaled at `epoch_us` (microseconds)."""
    if not _EVENT_ID.fullmatch(event_id):  # producers choose event ids; keep the key's alphabet and length fixed
        event_id = hashlib.sha256(event_id.encode()).hexdigest()[:32]
    return f"{epoch_us:016d}-{event_id}"


def position_key(epoch_us: int) -> str:
    """A cursor that is not an event: just before every event journaled in or after `epoch_us`."""
    return f"{epoch_us:016d}-0"


@dataclass(frozen=True)
class Cursor:
    key: str
    epoch_us: int

    @property
    def seconds(self) -> float:
        return self.epoch_us / 1_000_000


def parse_cursor(text: str) -> Cursor | None:
    """The cursor in a Last-Event-ID; None when it is not one this API issued."""
    if len(text) > MAX_LAST_EVENT_ID_LENGTH:
        return None
    match = _KEY.fullmatch(text.strip())
    if match is None:
        return None
    return Cursor(match.group(0), int(match.group(1)))


def check_cursor(text: str, now: float, retention_seconds: float) -> Cursor | str:
    """The cursor to replay after, or the resync reason when the id cannot be one (see RESYNC_REASONS)."""
    cursor = parse_cursor(text)
    if cursor is None or cursor.seconds > now + FUTURE_TOLERANCE_SECONDS:
        return "invalid_last_event_id"
    if cursor.seconds < now - retention_seconds:
        return "expired"
    return cursor


@dataclass(frozen=True)
class Span:
    """A time span (epoch seconds) during which one gateway incarnation journaled every live event it received."""

    start: float
    end: float


def first_gap(since: float, until: float, spans: Iterable[Span], slack: float = SPAN_SLACK_SECONDS) -> float | None:
    """Where the union of `spans` first fails to cover [since, until]; None when it covers it all."""
    reach = since
    for span in sorted(spans, key=lambda s: s.start):
        if reach >= until:
            break
        if span.end < reach:
            continue
        if span.start - slack > reach:
            return reach
        reach = max(reach, span.end)
    return None if reach >= until else reach


@dataclass
class Replay:
    """What a (re)connecting client is sent before the live events."""

    after: str | None = None  # the honoured Last-Event-ID: live events up to it were seen already
    events: list[LiveEvent] = field(default_factory=list)
    resync: str | None = None  # a RESYNC_REASONS key


class RecentEvents:
    """The live events this replica fanned out lately, per account, in memory: most replays need no query.

    Complete for every account since `complete_since` (epoch seconds; None: for nothing), which is when this
    replica started receiving, and moves forward as entries are evicted (older than `max_age_seconds`, or more
    than `max_events`) or when receiving was interrupted (a broker reconnect).
    """

    def __init__(self, max_events: int, max_age_seconds: float) -> None:
        self.max_events = max_events
        self.max_age_seconds = max_age_seconds
        self.complete_since: float | None = None
        self._arrivals: deque[tuple[float, str]] = deque()  # (key time, account), in arrival order
        self._by_account: dict[str, deque[LiveEvent]] = {}

    def __len__(self) -> int:
        return len(self._arrivals)

    def reset(self, complete_since: float | None) -> None:
        self._arrivals.clear()
        self._by_account.clear()
        self.complete_since = complete_since

    def add(self, account_id: str, event: LiveEvent, now: float) -> None:
        cursor = parse_cursor(event.id)
        self._arrivals.append((cursor.seconds if cursor else now, account_id))
        self._by_account.setdefault(account_id, deque()).append(event)
        self._evict(now)

    def _evict(self, now: float) -> None:
        arrivals = self._arrivals
        while arrivals and (len(arrivals) > self.max_events or arrivals[0][0] < now - self.max_age_seconds):
            at, account_id = arrivals.popleft()
            events = self._by_account[account_id]
            events.popleft()
            if not events:
                del self._by_account[account_id]
            if self.complete_since is not None:  # what sorted before `at` may be gone now
                self.complete_since = max(self.complete_since, at)

    def after(self, account_id: str, cursor: Cursor, now: float) -> list[LiveEvent] | None:
        """The account's events with a key after the cursor, in key order; None when memory cannot tell."""
        self._evict(now)
        if self.complete_since is None or cursor.seconds < self.complete_since + MEMORY_SLACK_SECONDS:
            return None
        return sorted((e for e in self._by_account.get(account_id, ()) if e.id > cursor.key), key=lambda e: e.id)


# --- I/O shell ---


class LiveJournal:
    """This replica's side of the journal: write what it fans out, replay, keep its span.

    `run()` is the background loop (heartbeat every `heartbeat_seconds`; retention is the journal's TTL index); `open()` starts this incarnation's span once its live queue is bound, `close()` ends it once the
    queue is gone.
    """

    heartbeat_seconds = 5.0
    write_timeout_seconds = 5.0
    read_timeout_seconds = 10.0
    pause_after_failure_seconds = 5.0  # a database that failed is not waited on for every event meanwhile

    def __init__(
        self,
        db: AsyncDatabase,
        *,
        retention_seconds: float,
        replay_max: int,
        memory_max: int = 20_000,
        clock: Callable[[], float] = time.time,
        receiving: Callable[[], bool] = lambda: True,
    ) -> None:
        self.db = db
        self.retention_seconds = retention_seconds
        self.replay_max = replay_max
        self.clock = clock
        self.receiving = receiving  # whether the live queue is consumed now (the broker connection is up)
        self.recent = RecentEvents(memory_max, retention_seconds)
        self.writer_id: str | None = None
        self.span_started: float | None = None
        self._span_seen: float | None = None  # the end of this replica's span as recorded
        self._spans_to_end: set[str] = set()  # earlier spans of this replica whose end is not recorded yet
        self._failed = False  # a write failed since the last heartbeat: this span cannot be extended
        self._paused_until = 0.0
        self._in_flight_since: float | None = None
        self._last_stamp_us = 0

    @property
    def alive_tolerance_seconds(self) -> float:
        """How long after its last heartbeat another replica's span still counts (it may be alive but late)."""
        return 3 * self.heartbeat_seconds

    async def open(self) -> None:
        now = self.clock()
        self.recent.reset(complete_since=now)
        await self._new_span(now)

    def receiving_interrupted(self) -> None:
        """The broker connection dropped: events published until it is back never reach this replica."""
        self._failed = True
        self.recent.reset(complete_since=None)

    def receiving_resumed(self) -> None:
        """The live queue is bound again: memory is complete from now; the span restarts at the next heartbeat."""
        self._failed = True
        self.recent.reset(complete_since=self.clock())

    async def _new_span(self, now: float) -> None:
        self.writer_id = uuid.uuid4().hex
        self.span_started = self._span_seen = now
        try:
            await live_events_repo.open_span(self.db, self.writer_id, now, retention=self.retention_seconds)
        except PyMongoError:
            log.warning("could not record the live journal span; retrying at the next heartbeat")
            self._failed = True

    async def record(self, account_id: str, event: LiveEvent) -> LiveEvent:
        """`event` with its journal key as id; journaled first, so a client subscribing later can replay it.

        A failed write still returns the event (live clients get it), under a key of this replica's clock, and
        ends this replica's span: a replay across it answers `gap` unless another replica journaled it.
        """
        now = self.clock()
        self._last_stamp_us = max(to_micros(now), self._last_stamp_us + 1)
        key = event_key(self._last_stamp_us, event.event_id)
        if now < self._paused_until:
            self._failed = True
        else:
            self._in_flight_since = now
            try:
                with pymongo.timeout(self.write_timeout_seconds):
                    key = await live_events_repo.record(
                        self.db,
                        account_id,
                        event.event_id,
                        key,
                        event.name,
                        event.data,
                        now,
                        retention=self.retention_seconds,
                    )
            except PyMongoError as exc:
                self._failed = True
                self._paused_until = self.clock() + self.pause_after_failure_seconds
                log.warning("live event not journaled; reconnecting clients may be asked to resync", exc_info=exc)
            finally:
                self._in_flight_since = None
        journaled = replace(event, id=key)
        self.recent.add(account_id, journaled, self.clock())  # before anyone sees it, like the database entry
        return journaled

    async def replay(self, account_id: str, last_event_id: str | None) -> Replay:
        """What a client that last saw `last_event_id` missed (see the module docstring for resyncs)."""
        if last_event_id is None:
            return Replay()
        now = self.clock()
        checked = check_cursor(last_event_id, now, self.retention_seconds)
        if isinstance(checked, str):
            return Replay(resync=checked)
        remembered = self.recent.after(account_id, checked, now)
        if remembered is not None:
            if len(remembered) > self.replay_max:
                return Replay(resync="too_many_missed")
            return Replay(after=checked.key, events=remembered)
        try:
            with pymongo.timeout(self.read_timeout_seconds):
                spans = await self._spans(now)
                if first_gap(checked.seconds, now, spans) is not None:
                    return Replay(resync="gap")
                docs = await live_events_repo.entries_after(self.db, account_id, checked.key, limit=self.replay_max + 1)
        except PyMongoError:
            log.warning("live journal unreadable; client asked to resync", exc_info=True)
            return Replay(resync="journal_unavailable")
        if len(docs) > self.replay_max:
            return Replay(resync="too_many_missed")
        events = [LiveEvent(d["name"], d["key"], d["data"], d["event_id"]) for d in docs]
        return Replay(after=checked.key, events=events)

    async def _spans(self, now: float) -> list[Span]:
        spans = []
        for doc in await live_events_repo.spans(self.db):
            if doc["_id"] == self.writer_id:
                continue  # this replica knows its own span better (below)
            end = doc["seen_at"].timestamp()
            ended = doc.get("stopped") or doc["_id"] in self._spans_to_end
            spans.append(Span(doc["started_at"].timestamp(), end if ended else end + self.alive_tolerance_seconds))
        if self.span_started is not None and self._span_seen is not None:
            # Alive and journaling: its span reaches now; after a failure it ends where it was last recorded.
            spans.append(Span(self.span_started, self._span_seen if self._failed else now))
        return spans

    async def heartbeat(self) -> None:
        """Extend this replica's span, or start a new one after a failed write (the old span ends where it was)."""
        now = self.clock()
        if not self.receiving():  # a span must not claim a time this replica was not receiving
            self._failed = True
            return
        if self._failed or self.writer_id is None:
            if self.writer_id is not None:
                self._spans_to_end.add(self.writer_id)
            self._failed = False  # before any await: a write failing meanwhile must be noticed again
            await self._new_span(now)
        else:
            seen = min(now, self._in_flight_since or now)  # an unfinished write may still fail
            try:
                await live_events_repo.extend_span(self.db, self.writer_id, seen, retention=self.retention_seconds)
            except PyMongoError:
                self._failed = True
                raise
            self._span_seen = max(self._span_seen or seen, seen)
        for writer_id in list(self._spans_to_end):  # they end at their last heartbeat, not "maybe alive" longer
            await live_events_repo.end_span(self.db, writer_id, retention=self.retention_seconds)
            self._spans_to_end.discard(writer_id)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_seconds)
            try:
                await self.heartbeat()
            except PyMongoError:
                log.warning("live journal heartbeat failed", exc_info=True)

    async def close(self) -> None:
        """End this incarnation's span (call once the live queue is gone: nothing after now is journaled here)."""
        if self.writer_id is None:
            return
        seen = None if self._failed else self.clock()  # after a failure the span ends at its last heartbeat
        try:
            with pymongo.timeout(self.write_timeout_seconds):  # shutdown does not wait on a database that is gone
                await live_events_repo.end_span(self.db, self.writer_id, seen, retention=self.retention_seconds)
                for writer_id in self._spans_to_end:
                    await live_events_repo.end_span(self.db, writer_id, retention=self.retention_seconds)
        except PyMongoError:
            log.warning("could not close the live journal span", exc_info=True)
