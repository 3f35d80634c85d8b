"""Conversations: one customer's thread on one stream. Inbox is the only writer.

A conversation document:
    _id, account_id, topic_id, stream_id, subject (of the first message, prefixes stripped), normalized_subject,
    customer {name, address}, customer_key (lower-case address), status open|pending|closed, tags, assignee,
    priority, message_count, last_message_at, created_at, updated_at,
    message_ids: the ids of its messages in the order they were stored (the message list reads these by `_id`),
    last_inbound_message_id / last_inbound_at: the newest customer message (what a reply threads on),
    origin_key: the dedup key of the message that opened it; `_id` is derived from (stream, origin_key), so a
        redelivered first mail finds the conversation it created instead of opening a second one,
    search_terms: only on conversations written before the search split (see below); new ones never get it.

Search: FerretDB v1 has no `$text`, so `q` is a case-insensitive substring match (escaped regex over lower-cased
snippets: subject, customer, the start of each message). The snippets live in `conversation_search`, one document
per conversation, so that a list (a scan of this collection on FerretDB v1) does not decode them. A search finds
the matching ids there, then pages through `conversations` with the list's filters, order and cursor, limited to
those ids, or to a conversation whose own legacy `search_terms` match (written before the split: searchable
without a migration). Both are scans on FerretDB v1, bounded by the snippet sizes below; good for tens of
thousands of conversations, not for millions (that wants a search engine).

Counters are idempotent: a message is counted by the same update that appends its id to `message_ids`, guarded by
"not in `message_ids` yet", and `last_message_at` only moves forward, so a redelivered mail never counts twice.
The thread keys of a conversation (the Message-IDs of its messages) are looked up through the messages themselves
(`messages.conversation_of`, an `_id` lookup); see `messages` for why bare `_id` lookups matter on FerretDB v1.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from mailstream_common.contracts import utcnow
from mailstream_common.mongo import insert_once

from ..threading import ThreadCandidate
from . import conversation_search as search_repo
from . import keyset_page
from .messages import find_owned, keyed_id

COLLECTION = "conversations"
SUBJECTS = "conversation_subjects"  # _id: subject_key(...) -> {conversation_id}: the subject fallback's lookup
SNIPPET_CHARS = 400
_CANDIDATE_FIELDS = {"_id": 1, "stream_id": 1, "customer_key": 1, "normalized_subject": 1, "last_message_at": 1}
LIST_PROJECTION = {"search_terms": 0, "message_ids": 0}


def _list_index(*fields: str, name: str) -> IndexModel:
    keys = [("account_id", ASCENDING), *((f, ASCENDING) for f in fields)]
    return IndexModel([*keys, ("last_message_at", DESCENDING), ("_id", DESCENDING)], name=name)


INDEXES = {
    COLLECTION: [
        _list_index(name="conversations_list"),
        _list_index("status", name="conversations_by_status"),
        _list_index("stream_id", name="conversations_by_stream"),
        _list_index("topic_id", name="conversations_by_topic"),
        _list_index("tags", name="conversations_by_tag"),
        _list_index("assignee", name="conversations_by_assignee"),
        IndexModel([("stream_id", ASCENDING), ("origin_key", ASCENDING)], unique=True, name="conversations_origin"),
    ]
}


def conversation_id_for(stream_id: str, origin_key: str) -> str:
    return keyed_id("conversation", stream_id, origin_key)


def _candidate(doc: dict[str, Any], thread_keys: frozenset[str] = frozenset()) -> ThreadCandidate:
    return ThreadCandidate(
        conversation_id=doc["_id"],
        stream_id=doc["stream_id"],
        customer_address=doc.get("customer_key", ""),
        normalized_subject=doc.get("normalized_subject", ""),
        last_message_at=doc["last_message_at"],
        thread_keys=thread_keys,
    )


async def candidates(db: AsyncDatabase, keys_by_conversation: dict[str, set[str]]) -> list[ThreadCandidate]:
    """Threading candidates for conversations found through referenced Message-IDs (which are their keys)."""
    found = []
    for conversation_id, keys in keys_by_conversation.items():
        doc = await db[COLLECTION].find_one({"_id": conversation_id}, _CANDIDATE_FIELDS)
        if doc is not None:
            found.append(_candidate(doc, frozenset(keys)))
    return found


async def find_by_subject(
    db: AsyncDatabase, stream_id: str, normalized_subject: str, customer_address: str
) -> list[ThreadCandidate]:
    """The customer's most recent conversation on the stream with this subject (what the fallback may join).

    Read through `conversation_subjects`, keyed by `_id` = (stream, subject, customer): one lookup, no scan."""
    if not normalized_subject or not customer_address:
        return []
    pointer = await db[SUBJECTS].find_one({"_id": subject_key(stream_id, normalized_subject, customer_address)})
    if pointer is None:
        return []
    doc = await db[COLLECTION].find_one({"_id": pointer["conversation_id"]}, _CANDIDATE_FIELDS)
    return [_candidate(doc)] if doc is not None else []


def subject_key(stream_id: str, normalized_subject: str, customer_address: str) -> str:
    return keyed_id("subject", stream_id, normalized_subject, customer_address.lower())


async def point_subject_to(db: AsyncDatabase, conversation: dict[str, Any]) -> None:
    """Remember `conversation` as the latest one for its (stream, subject, customer) (idempotent upsert)."""
    subject, customer = conversation.get("normalized_subject"), conversation.get("customer_key")
    if not subject or not customer:
        return
    key = subject_key(conversation["stream_id"], subject, customer)
    with contextlib.suppress(DuplicateKeyError):  # two first writers at once: the other one's pointer is as good
        await db[SUBJECTS].update_one(
            {"_id": key}, {"$set": {"conversation_id": conversation["_id"], "updated_at": utcnow()}}, upsert=True
        )


async def find_by_origin(db: AsyncDatabase, stream_id: str, origin_key: str) -> dict[str, Any] | None:
    return await db[COLLECTION].find_one({"_id": conversation_id_for(stream_id, origin_key)})


def search_snippet(*parts: str | None) -> str:
    joined = " ".join(p for p in parts if p)
    return " ".join(joined.split()).lower()[:SNIPPET_CHARS]


async def create_once(
    db: AsyncDatabase,
    *,
    account_id: str,
    topic_id: str,
    stream_id: str,
    subject: str,
    normalized_subject: str,
    customer: dict[str, str],
    origin_key: str,
    started_at: datetime,
) -> tuple[dict[str, Any], bool]:
    """The conversation opened by the message with `origin_key`, created unless it already exists.

    Its search document is written first: a crash in between leaves a search document no conversation joins
    (harmless), while the other order would leave a conversation whose redelivered first mail (found by
    `find_by_origin`, not created again) never gets its subject and customer searchable.
    """
    conversation_id = conversation_id_for(stream_id, origin_key)
    async with _conversation_lock(db, conversation_id):
        await search_repo.add_terms(
            db, conversation_id, account_id, [search_snippet(subject, customer.get("name"), customer.get("address"))]
        )
    doc = {
        "_id": conversation_id,
        "account_id": account_id,
        "topic_id": topic_id,
        "stream_id": stream_id,
        "subject": subject,
        "normalized_subject": normalized_subject,
        "customer": customer,
        "customer_key": customer.get("address", "").lower(),
        "status": "open",
        "tags": [],
        "assignee": None,
        "priority": "normal",
        "message_count": 0,
        "last_message_at": started_at,
        "last_inbound_at": None,
        "last_inbound_message_id": None,
        "created_at": started_at,
        "updated_at": utcnow(),
        "message_ids": [],
        "origin_key": origin_key,
    }
    return await insert_once(db[COLLECTION], doc, {"_id": doc["_id"]})


LOCKS = "conversation_locks"
LOCK_LEASE_SECONDS = 15.0
LOCK_WAIT_SECONDS = 20.0


@contextlib.asynccontextmanager
async def _conversation_lock(db: AsyncDatabase, conversation_id: str) -> AsyncIterator[None]:
    """Hold a conversation's append lock: one writer at a time folds messages into it.

    FerretDB v1 applies an update as read-modify-write without isolation, so two concurrent `$push`es to
    `message_ids` can lose one (a customer's quick follow-ups did). The lock is the insert of a document with the
    conversation's `_id`: a unique-key insert is atomic on MongoDB and FerretDB alike. A holder that died loses the
    lock when its lease runs out; a writer that cannot get it in time fails and is retried by the broker.
    """
    locks = db[LOCKS]
    deadline = asyncio.get_running_loop().time() + LOCK_WAIT_SECONDS
    while True:
        try:
            await locks.insert_one({"_id": conversation_id, "claimed_at": utcnow()})
            break
        except DuplicateKeyError:
            held = await locks.find_one({"_id": conversation_id})
            if held is not None and held["claimed_at"] < utcnow() - timedelta(seconds=LOCK_LEASE_SECONDS):
                await locks.delete_one({"_id": conversation_id, "claimed_at": held["claimed_at"]})
                continue
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"conversation {conversation_id} stayed locked") from None
            await asyncio.sleep(0.02)  # the holder's few updates take milliseconds
    try:
        yield
    finally:
        await locks.delete_one({"_id": conversation_id})


async def record_message(
    db: AsyncDatabase,
    conversation_id: str,
    *,
    message_id: str,
    message_at: datetime,
    snippet: str | None,
    inbound: bool,
    account_id: str | None = None,
) -> None:
    """Fold a stored message into its conversation; safe to repeat (each step is guarded or monotonic).

    A customer writing again reopens a pending or closed conversation. A `snippet` (needs `account_id`, which owns
    the search document) is added to the conversation's search terms.
    """
    if snippet and account_id is None:
        raise ValueError("a search snippet needs the conversation's account_id")
    async with _conversation_lock(db, conversation_id):
        await _record_message(db, conversation_id, message_id, message_at, inbound)
        if snippet and account_id is not None:  # bounded: a long thread stops adding snippets
            await search_repo.add_terms(db, conversation_id, account_id, [snippet])


async def _record_message(
    db: AsyncDatabase, conversation_id: str, message_id: str, message_at: datetime, inbound: bool
) -> None:
    conversations = db[COLLECTION]
    await conversations.update_one(
        {"_id": conversation_id, "message_ids": {"$ne": message_id}},
        {"$push": {"message_ids": message_id}, "$inc": {"message_count": 1}},
    )
    await conversations.update_one(
        {"_id": conversation_id}, {"$max": {"last_message_at": message_at}, "$set": {"updated_at": utcnow()}}
    )
    if inbound:
        await conversations.update_one(
            {"_id": conversation_id, "$or": [{"last_inbound_at": None}, {"last_inbound_at": {"$lte": message_at}}]},
            {"$set": {"last_inbound_at": message_at, "last_inbound_message_id": message_id}},
        )
        await conversations.update_one(
            {"_id": conversation_id, "status": {"$in": ["pending", "closed"]}}, {"$set": {"status": "open"}}
        )


async def get(db: AsyncDatabase, account_id: str, conversation_id: str) -> dict[str, Any] | None:
    return await find_owned(db[COLLECTION], conversation_id, account_id, LIST_PROJECTION)


async def get_with_message_ids(db: AsyncDatabase, account_id: str, conversation_id: str) -> dict[str, Any] | None:
    return await find_owned(db[COLLECTION], conversation_id, account_id, {"search_terms": 0})


async def get_internal(db: AsyncDatabase, conversation_id: str) -> dict[str, Any] | None:
    return await db[COLLECTION].find_one({"_id": conversation_id})


def list_query(
    account_id: str,
    *,
    topic_id: str | None = None,
    stream_id: str | None = None,
    status: str | None = None,
    tag: str | None = None,
    assignee: str | None = None,
) -> dict[str, Any]:
    # A conversation is opened just before its first message is stored; until that message is folded in, it has
    # nothing to show, and listing it would offer an empty thread.
    query: dict[str, Any] = {"account_id": account_id, "message_count": {"$gt": 0}}
    for field, value in (
        ("topic_id", topic_id),
        ("stream_id", stream_id),
        ("status", status),
        ("tags", tag),
        ("assignee", assignee),
    ):
        if value is not None:
            query[field] = value
    return query


def search_query(query: dict[str, Any], pattern: str, matching_ids: list[str]) -> dict[str, Any]:
    """`query` narrowed to the conversations whose search document matched (`matching_ids`), or whose own
    `search_terms` (written before the search split) match `pattern`."""
    return {**query, "$or": [{"_id": {"$in": matching_ids}}, {"search_terms": {"$regex": pattern}}]}


async def list_page(
    db: AsyncDatabase, query: dict[str, Any], *, limit: int, after: dict[str, Any] | None, q: str | None = None
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """Newest activity first, `_id` breaking ties, keyset-paginated (a deep page costs what the first does).

    With `q`, only the conversations whose search terms contain it (same order, filters and cursor)."""
    pattern = search_repo.term_pattern(q)
    if pattern is not None:
        query = search_query(query, pattern, await search_repo.matching_ids(db, query["account_id"], pattern))
    return await keyset_page(
        db[COLLECTION],
        query,
        limit=limit,
        after=after,
        sort_field="last_message_at",
        descending=True,
        projection=LIST_PROJECTION,
    )


async def update_fields(
    db: AsyncDatabase, account_id: str, conversation_id: str, changes: dict[str, Any]
) -> dict[str, Any] | None:
    """Set status/tags/assignee/priority; the document after the change (None if not this account's)."""
    return await db[COLLECTION].find_one_and_update(
        {"_id": conversation_id, "account_id": account_id},
        {"$set": {**changes, "updated_at": utcnow()}},
        return_document=ReturnDocument.AFTER,  # no projection: FerretDB v1's findAndModify does not support one
    )
