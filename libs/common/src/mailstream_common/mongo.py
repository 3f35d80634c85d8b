"""MongoDB: one async client per process, per-service index bootstrap, and the idempotent-write pattern.

Everything here must run on real MongoDB and on FerretDB v1 (SQLite), so: no transactions, no change streams,
no $lookup, no TTL or partial indexes, and no dots or '$' in field names (headers are lists of pairs).
"""

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from pymongo import AsyncMongoClient, IndexModel
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

log = logging.getLogger(__name__)


def create_client(uri: str, *, app_name: str) -> AsyncMongoClient:
    """The one client of a process (it pools connections; make it once, share it)."""
    return AsyncMongoClient(uri, tz_aware=True, appname=app_name, serverSelectionTimeoutMS=5000)


async def ensure_indexes(db: AsyncDatabase, indexes: Mapping[str, Sequence[IndexModel]]) -> None:
    """Create each service's indexes at start-up; idempotent, so every replica may run it.

    One index per createIndexes call: FerretDB v1 drops the connection when one call names several indexes of
    which some exist already.
    """
    for collection, models in indexes.items():
        for model in models:
            await db[collection].create_indexes([model])


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
