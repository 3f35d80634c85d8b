"""Dead letters the keeper took off `<queue>.dead`: one document per message and queue, its body in 1 MiB chunks.

States: `dead` -> `requeuing` (claimed by one operator's request, a lease) -> `requeued`; `dead` -> `discarded`.
Each move is one conditional update of the letter (`find_one_and_update` from the expected state), so two operators
acting at once cannot both requeue or both discard one letter. A requeued message that dies again comes back with
its requeue count and turns the same letter `dead` again. `history` logs each death, requeue and discard, each
written by the same update as the change it records.
Final letters (requeued, discarded) expire after `RETENTION` (TTL index on `expires_at`, bodies too).
"""

import uuid
from datetime import datetime, timedelta
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from mailstream_common.contracts import utcnow

from ..dead_letters import names_any, split_chunks
from .pages import keyset_page

LETTERS = "dead_letters"
BODIES = "dead_letter_bodies"
CHUNK_BYTES = 1024 * 1024
RETENTION = timedelta(days=30)
#: A requeue claimed but never finished (its process died between the claim and the broker's confirm) may be taken
#: again after this long.
REQUEUE_LEASE = timedelta(seconds=60)
HISTORY_MAX = 20

NEWEST_FIRST = [("dead_at", DESCENDING), ("_id", DESCENDING)]

# Lists: one index per filter shape (with or without a queue; an account's admins, or the operator), each also
# yielding the newest-first order, so a page costs its limit.
INDEXES = {
    LETTERS: [
        IndexModel([("state", ASCENDING), *NEWEST_FIRST], name="dead_letters_by_state"),
        IndexModel([("state", ASCENDING), ("queue", ASCENDING), *NEWEST_FIRST], name="dead_letters_by_queue"),
        IndexModel([("account_id", ASCENDING), ("state", ASCENDING), *NEWEST_FIRST], name="dead_letters_by_account"),
        IndexModel(
            [("account_id", ASCENDING), ("state", ASCENDING), ("queue", ASCENDING), *NEWEST_FIRST],
            name="dead_letters_by_account_queue",
        ),
        IndexModel([("expires_at", ASCENDING)], expireAfterSeconds=0, name="dead_letters_expiry"),
    ],
    BODIES: [
        IndexModel([("letter_id", ASCENDING), ("n", ASCENDING)], unique=True, name="dead_letter_bodies_order"),
        IndexModel([("expires_at", ASCENDING)], expireAfterSeconds=0, name="dead_letter_bodies_expiry"),
    ],
}

#: What a list item carries (no headers, preview or history: those are for `get`).
LIST_FIELDS = {"headers": 0, "preview": 0, "history": 0}


async def keep(db: AsyncDatabase, record: dict[str, Any], body: bytes) -> str:
    """Store one dead-lettered copy; idempotent. Returns what happened: `kept` (a new letter), `died_again` (a
    requeued letter failed again), or `duplicate` (this copy was kept before: a redelivery to the keeper)."""
    for n, chunk in enumerate(split_chunks(body, CHUNK_BYTES)):  # bytes first: a letter always has all of them
        await db[BODIES].update_one(
            {"_id": f"{record['_id']}:{n}"},
            {"$setOnInsert": {"letter_id": record["_id"], "n": n, "data": chunk}},
            upsert=True,
        )
    try:
        await db[LETTERS].insert_one(record)
        return "kept"
    except DuplicateKeyError:
        pass
    died = await db[LETTERS].update_one(
        # Only a copy of a later requeue than the letter has seen dead: the same copy again changes nothing.
        {"_id": record["_id"], "state": {"$in": ["requeuing", "requeued"]}, "requeues": record["requeues"]},
        {
            "$set": {
                field: record[field]
                for field in ("state", "reason", "attempts", "dead_at", "kept_at", "headers", "first_seen_at")
            },
            "$unset": {"requeue": "", "expires_at": ""},
            "$push": {"history": {"$each": record["history"], "$slice": -HISTORY_MAX}},
        },
    )
    if not died.modified_count:
        return "duplicate"
    await db[BODIES].update_many({"letter_id": record["_id"]}, {"$unset": {"expires_at": ""}})
    return "died_again"


def _scope(account_id: str | None) -> dict[str, Any]:
    """An account's admins see the letters of their account only; None is the platform operator (every letter)."""
    return {} if account_id is None else {"account_id": account_id}


async def list_letters(
    db: AsyncDatabase,
    *,
    account_id: str | None,
    state: str = "dead",
    queue: str | None = None,
    limit: int,
    after: dict[str, Any] | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    query: dict[str, Any] = {**_scope(account_id), "state": state}
    if queue is not None:
        query["queue"] = queue
    return await keyset_page(
        db[LETTERS], query, limit=limit, after=after, sort_field="dead_at", descending=True, projection=LIST_FIELDS
    )


async def get(db: AsyncDatabase, letter_id: str, *, account_id: str | None) -> dict[str, Any] | None:
    return await db[LETTERS].find_one({"_id": letter_id, **_scope(account_id)})


async def body_of(db: AsyncDatabase, letter_id: str) -> bytes:
    chunks = [c async for c in db[BODIES].find({"letter_id": letter_id}).sort("n", ASCENDING)]
    return b"".join(bytes(c["data"]) for c in chunks)


async def claim_requeue(
    db: AsyncDatabase, letter_id: str, *, account_id: str | None, by: str, now: datetime | None = None
) -> dict[str, Any] | None:
    """Take the letter for one requeue: `dead` (or a requeue whose lease ran out) -> `requeuing`, the requeue count
    incremented. The letter as claimed, or None when it is not there, not in this scope, or not requeueable."""
    now = now or utcnow()
    claim = {
        "$set": {"state": "requeuing", "requeue": {"token": uuid.uuid4().hex, "by": by, "at": now}},
        "$push": {"history": {"$each": [{"event": "requeued", "by": by, "at": now}], "$slice": -HISTORY_MAX}},
    }
    # A dead letter starts a new requeue (count + 1); a stranded claim is taken over with the count it had, since
    # its copy may already be on the queue. Two plain filters rather than one `$or`, which SecantusDB answers by
    # walking the collection.
    attempts = (
        ({"state": "dead"}, {**claim, "$inc": {"requeues": 1}}),
        ({"state": "requeuing", "requeue.at": {"$lt": now - REQUEUE_LEASE}}, claim),
    )
    for expected, update in attempts:
        letter = await db[LETTERS].find_one_and_update(
            {"_id": letter_id, **_scope(account_id), **expected}, update, return_document=ReturnDocument.AFTER
        )
        if letter is not None:
            return letter
    return None


async def finish_requeue(db: AsyncDatabase, letter: dict[str, Any], now: datetime | None = None) -> bool:
    """The broker confirmed the copy: `requeuing` -> `requeued` (only by the claim's owner)."""
    now = now or utcnow()
    result = await db[LETTERS].update_one(
        {"_id": letter["_id"], "state": "requeuing", "requeue.token": letter["requeue"]["token"]},
        {"$set": {"state": "requeued", "requeued_at": now, "expires_at": now + RETENTION}},
    )
    if result.modified_count:
        await db[BODIES].update_many({"letter_id": letter["_id"]}, {"$set": {"expires_at": now + RETENTION}})
    return bool(result.modified_count)


async def release_requeue(db: AsyncDatabase, letter: dict[str, Any]) -> None:
    """The publish failed: back to `dead`, so it can be requeued again (only by the claim's owner)."""
    await db[LETTERS].update_one(
        {"_id": letter["_id"], "state": "requeuing", "requeue.token": letter["requeue"]["token"]},
        {"$set": {"state": "dead"}, "$unset": {"requeue": ""}},
    )


async def discard(
    db: AsyncDatabase, letter_id: str, *, account_id: str | None, reason: str, by: str, now: datetime | None = None
) -> dict[str, Any] | None:
    """`dead` -> `discarded`, recording who and why. None when not there, not in scope, or not dead."""
    now = now or utcnow()
    letter = await db[LETTERS].find_one_and_update(
        {"_id": letter_id, **_scope(account_id), "state": "dead"},
        {
            "$set": {
                "state": "discarded",
                "discard": {"reason": reason, "by": by, "at": now},
                "expires_at": now + RETENTION,
            },
            "$push": {
                "history": {
                    "$each": [{"event": "discarded", "by": by, "at": now, "reason": reason}],
                    "$slice": -HISTORY_MAX,
                }
            },
        },
        return_document=ReturnDocument.AFTER,
    )
    if letter is not None:
        await db[BODIES].update_many({"letter_id": letter_id}, {"$set": {"expires_at": now + RETENTION}})
    return letter


async def dead_ids(db: AsyncDatabase, *, account_id: str | None, queue: str, limit: int) -> list[str]:
    """Ids of the dead letters of one queue (oldest first), for "requeue all"."""
    cursor = db[LETTERS].find({**_scope(account_id), "state": "dead", "queue": queue}, {"_id": 1})
    return [doc["_id"] async for doc in cursor.sort([("dead_at", ASCENDING), ("_id", ASCENDING)]).limit(limit)]


async def count_dead_by_queue(db: AsyncDatabase) -> dict[str, int]:
    """How many letters wait in each queue (state `dead`), for the gauge."""
    pipeline = [{"$match": {"state": "dead"}}, {"$group": {"_id": "$queue", "count": {"$sum": 1}}}]
    return {doc["_id"]: doc["count"] async for doc in await db[LETTERS].aggregate(pipeline)}


async def erase_naming(db: AsyncDatabase, account_id: str, needles: list[str]) -> int:
    """Data erasure (issue 17): drop the account's letters whose body names a needle, in any state, with their body
    chunks. Letters are few (an operator's backlog), so reading the account's through is cheap; re-runnable."""
    erased = 0
    async for letter in db[LETTERS].find({"account_ids": account_id}, {"_id": 1}):
        if names_any(await body_of(db, letter["_id"]), needles):
            await db[BODIES].delete_many({"letter_id": letter["_id"]})
            erased += (await db[LETTERS].delete_one({"_id": letter["_id"]})).deleted_count
    return erased
