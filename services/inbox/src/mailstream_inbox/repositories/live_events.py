"""The live-event journal: what `GET /v1/events` replays to a client that reconnects with `Last-Event-ID`.

- `live_events`: one entry per (account, broker event). Every gateway replica writes every event it fans out
  (they all see all of them); the `_id` is derived from the account and event id, so only the first write lands
  and the others read its `key` back (one `_id` lookup). The `key` ("<ms>-<event id>", see `live_journal`) is
  the SSE `id:` and the replay order.
- `live_event_writers`: one document per gateway incarnation, the time span during which it journaled every
  live event it received (`started_at` .. `seen_at`, a heartbeat). Where no span covers a moment, no gateway
  was journaling (none running, or the database refused the writes), and a replay across it could miss events.

Retention is a TTL index on each document's `expires_at` (written by the replica from its retention setting, so
changing the setting needs no index change): MongoDB deletes expired entries and spans in the background (about
once a minute), so a replay never relies on them being gone; `live_journal` checks the age of a cursor itself.
"""

from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase

from mailstream_common.mongo import insert_once

LIVE_EVENTS = "live_events"
WRITERS = "live_event_writers"

INDEXES = {
    LIVE_EVENTS: [
        IndexModel([("account_id", ASCENDING), ("key", ASCENDING)], name="live_events_replay"),
        IndexModel([("expires_at", ASCENDING)], expireAfterSeconds=0, name="live_events_expiry"),
    ],
    WRITERS: [IndexModel([("expires_at", ASCENDING)], expireAfterSeconds=0, name="live_event_writers_expiry")],
}


def _when(epoch_seconds: float) -> datetime:
    return datetime.fromtimestamp(epoch_seconds, UTC)


def entry_id(account_id: str, event_id: str) -> str:
    """One entry per account and event: a replayed `_id` of another account can never be read back."""
    return f"{account_id}:{event_id}"


async def record(
    db: AsyncDatabase,
    account_id: str,
    event_id: str,
    key: str,
    name: str,
    data: dict[str, Any],
    at: float,
    *,
    retention: float,
) -> str:
    """Journal the event unless a replica did already; returns the key the journal holds for it."""
    doc = {
        "_id": entry_id(account_id, event_id),
        "account_id": account_id,
        "event_id": event_id,
        "key": key,
        "at": _when(at),
        "expires_at": _when(at + retention),
        "name": name,
        "data": data,
    }
    stored, _created = await insert_once(db[LIVE_EVENTS], doc, {"_id": doc["_id"]})
    return stored["key"]


async def entries_after(db: AsyncDatabase, account_id: str, after_key: str, *, limit: int) -> list[dict[str, Any]]:
    """The account's entries with a key after `after_key`, oldest first, at most `limit`."""
    cursor = (
        db[LIVE_EVENTS]
        .find(
            {"account_id": account_id, "key": {"$gt": after_key}},
            {"_id": 0, "event_id": 1, "key": 1, "name": 1, "data": 1},
        )
        .sort([("key", ASCENDING)])
        .limit(limit)
    )
    return await cursor.to_list(length=limit)


# --- writer spans ---


async def open_span(db: AsyncDatabase, writer_id: str, now: float, *, retention: float) -> None:
    await db[WRITERS].insert_one(
        {
            "_id": writer_id,
            "started_at": _when(now),
            "seen_at": _when(now),
            "expires_at": _when(now + retention),
            "stopped": False,
        }
    )


async def extend_span(db: AsyncDatabase, writer_id: str, seen: float, *, retention: float) -> None:
    """Move the span's end to `seen` (an update by `_id`: only this replica writes its span)."""
    await db[WRITERS].update_one(
        {"_id": writer_id}, {"$set": {"seen_at": _when(seen), "expires_at": _when(seen + retention)}}
    )


async def end_span(db: AsyncDatabase, writer_id: str, seen: float | None = None, *, retention: float) -> None:
    """Mark the span ended (at `seen`, or where its last heartbeat left it): it no longer counts as maybe alive."""
    changes: dict[str, Any] = {"stopped": True}
    if seen is not None:
        changes["seen_at"] = _when(seen)
        changes["expires_at"] = _when(seen + retention)
    await db[WRITERS].update_one({"_id": writer_id}, {"$set": changes})


async def spans(db: AsyncDatabase) -> list[dict[str, Any]]:
    """Every recorded span (a handful: one per gateway incarnation within the retention)."""
    return await db[WRITERS].find({}, {"started_at": 1, "seen_at": 1, "stopped": 1}).to_list(length=None)
