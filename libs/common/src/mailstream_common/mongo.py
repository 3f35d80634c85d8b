"""MongoDB: one async client per process, per-service index bootstrap, and the idempotent-write pattern.

The code is written for MongoDB's semantics and relies on these rules (each one is pinned by
tests/common/test_database_semantics.py, which runs against whatever server MONGODB_URI names):

- A write to one document is atomic: a conditional `update_one` / `find_one_and_update` whose filter carries a
  state or version guard is applied by exactly one of any number of concurrent writers; `$inc`, `$push`,
  `$addToSet` and `$set`s of different fields never lose a concurrent update.
- `find_one_and_update` returns the document as it was (or is) around that one atomic write: a claim or a counter.
- A unique index rejects a second document with error code 11000 (`DuplicateKeyError`): the idempotency key of
  every consumer (`insert_once`), and the loser's signal in a guarded upsert (the filter misses, the insert collides).
- TTL indexes delete expired documents in the background (within about a minute on MongoDB; not at the instant);
  partial indexes hold, and enforce uniqueness over, only the documents their filter matches.
- One `createIndexes` call may name several indexes, some of which exist already (a no-op for those).
- Writes are acknowledged with the client-wide write concern below; with the default (`w="majority"`, `j=True`) an
  acknowledged write is in the journal of a majority of the replica set, so a consumer that acknowledges its broker
  message after the write never acknowledges something a database crash can take back.
"""

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from pymongo import AsyncMongoClient, IndexModel, WriteConcern, monitoring
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from . import metrics
from .settings import CommonSettings

log = logging.getLogger(__name__)


def write_concern(settings: CommonSettings) -> WriteConcern:
    """The write concern of `MONGODB_WRITE_CONCERN_W` / `MONGODB_WRITE_CONCERN_J` ("majority"/true by default)."""
    w: int | str = settings.mongodb_write_concern_w
    if isinstance(w, str) and w.isdigit():
        w = int(w)  # "1" is a node count; "majority" (or a tag set name) stays a string
    return WriteConcern(w=w, j=settings.mongodb_write_concern_j)


def command_collection(command_name: str, command: Mapping[str, Any]) -> str | None:
    """The collection a command works on (`{"find": "messages"}`, `{"getMore": id, "collection": "messages"}`),
    or None for a command about the server or a session (hello, ping, endSessions ...)."""
    target = command.get("collection") if command_name == "getMore" else command.get(command_name)
    return target if isinstance(target, str) and target else None


class CommandTimer(monitoring.CommandListener):
    """Times every collection command the client sends (`mailstream_database_command_seconds`): which query grew
    slow is then one PromQL away, in any service. pymongo calls it on the event loop's thread; a dict keyed by
    the connection and request id carries the labels from the start event to the end event."""

    def __init__(self) -> None:
        self._labels: dict[tuple[Any, int], tuple[str, str]] = {}

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        collection = command_collection(event.command_name, event.command)
        if collection is not None:
            self._labels[(event.connection_id, event.request_id)] = (event.command_name, collection)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        # A write the server refused (a duplicate key) comes back as ok: 1 with writeErrors, not as a failure.
        self._finish(event, failed=bool(event.reply.get("writeErrors") or event.reply.get("writeConcernError")))

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        self._finish(event, failed=True)

    def _finish(self, event: monitoring.CommandSucceededEvent | monitoring.CommandFailedEvent, *, failed: bool) -> None:
        labels = self._labels.pop((event.connection_id, event.request_id), None)
        if labels is None:  # a command about the server, not timed
            return
        metrics.DATABASE_COMMAND_SECONDS.labels(*labels).observe(event.duration_micros / 1e6)
        if failed:
            metrics.DATABASE_COMMAND_FAILURES.labels(*labels).inc()


def create_client(uri: str, *, app_name: str, settings: CommonSettings | None = None) -> AsyncMongoClient:
    """The one client of a process (it pools connections; make it once, share it).

    Every write through it uses the durable write concern of `settings` (read from the environment when not
    given), so no repository has to remember it. It takes precedence over any `w`/`journal` option in the URI.
    """
    settings = settings if settings is not None else CommonSettings()
    concern = write_concern(settings)
    return AsyncMongoClient(
        uri,
        tz_aware=True,
        appname=app_name,
        serverSelectionTimeoutMS=5000,
        maxIdleTimeMS=int(settings.mongodb_max_idle_seconds * 1000),
        w=concern.document["w"],
        journal=concern.document["j"],
        event_listeners=[CommandTimer()],
    )


async def ensure_indexes(db: AsyncDatabase, indexes: Mapping[str, Sequence[IndexModel]]) -> None:
    """Create each service's indexes at start-up: one createIndexes call per collection.

    Idempotent (indexes that exist with the same keys and options are left alone), so every replica may run it.
    An index that exists under the same name with other keys or options fails the call loudly (code 85/86):
    dropping it is a decision for whoever changed the definition, not something to do silently at start-up.
    """
    for collection, models in indexes.items():
        if models:
            await db[collection].create_indexes(list(models))


async def ping(client: AsyncMongoClient) -> bool:
    try:
        await client.admin.command("ping")
    except Exception:
        return False
    return True


async def insert_once(
    collection: AsyncCollection, document: dict[str, Any], key: Mapping[str, Any]
) -> tuple[dict[str, Any], bool]:
    """Insert `document` unless a document with the same unique `key` exists; return (stored, created).

    The collection must have a unique index on the fields of `key`. This is the write of every idempotent
    consumer: a redelivered message finds its earlier result and changes nothing.
    """
    try:
        await collection.insert_one(document)
    except DuplicateKeyError:
        existing = await collection.find_one(dict(key))
        if existing is None:  # the unique key was taken by a document that differs in `key`'s fields
            raise
        return existing, False
    return document, True
