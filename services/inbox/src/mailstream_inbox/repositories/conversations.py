"""Conversations: one customer's thread on one stream. Inbox is the only writer.

A conversation document:
    _id, account_id, topic_id, stream_id, subject (of the first message, prefixes stripped), normalized_subject,
    customer {name, address}, customer_key (lower-case address), status open|pending|closed, tags, assignee,
    priority, message_count, last_message_at, created_at, updated_at,
    thread_keys: Message-IDs of the messages in it (inbound and our outbound replies; see `threading`),
    origin_key: the dedup key of the message that opened it (unique per stream: a redelivered first mail finds the
        conversation it created instead of opening a second one),
    search_terms: lower-cased snippets (subject, customer, the start of each message) that `q` searches.

Search: FerretDB v1 has no `$text`, so `q` is a case-insensitive substring match (escaped regex over the
lower-cased `search_terms`). It scans the account's conversations, bounded by the snippet sizes below; good for
tens of thousands of conversations, not for millions (that wants a search engine).

Counters are idempotent: after a message is stored the conversation's `message_count` is re-counted and raised
with `$max` (never `$inc`), and `last_message_at` only moves forward, so a redelivered mail never counts twice.
"""

import re
import uuid
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from mailstream_common.contracts import utcnow
from mailstream_common.mongo import insert_once

from ..threading import ThreadCandidate
from . import keyset_page

COLLECTION = "conversations"
SNIPPET_CHARS = 400
MAX_SEARCH_TERMS = 40
_CANDIDATE_FIELDS = {
    "_id": 1,
    "stream_id": 1,
    "customer_key": 1,
    "normalized_subject": 1,
    "last_message_at": 1,
    "thread_keys": 1,
}
LIST_PROJECTION = {"search_terms": 0, "thread_keys": 0}


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
        IndexModel([("stream_id", ASCENDING), ("thread_keys", ASCENDING)], name="conversations_thread_keys"),
        IndexModel(
            [("stream_id", ASCENDING), ("normalized_subject", ASCENDING), ("customer_key", ASCENDING)],
            name="conversations_subject_fallback",
        ),
        IndexModel([("stream_id", ASCENDING), ("origin_key", ASCENDING)], unique=True, name="conversations_origin"),
    ]
}


def _candidate(doc: dict[str, Any]) -> ThreadCandidate:
    return ThreadCandidate(
        conversation_id=doc["_id"],
        stream_id=doc["stream_id"],
        customer_address=doc.get("customer_key", ""),
        normalized_subject=doc.get("normalized_subject", ""),
        last_message_at=doc["last_message_at"],
        thread_keys=frozenset(doc.get("thread_keys", [])),
    )


async def find_by_thread_keys(db: AsyncDatabase, stream_id: str, message_ids: list[str]) -> list[ThreadCandidate]:
    if not message_ids:
        return []
    cursor = db[COLLECTION].find({"stream_id": stream_id, "thread_keys": {"$in": message_ids}}, _CANDIDATE_FIELDS)
    return [_candidate(doc) for doc in await cursor.to_list(length=50)]


async def find_by_subject(
    db: AsyncDatabase, stream_id: str, normalized_subject: str, customer_address: str
) -> list[ThreadCandidate]:
    if not normalized_subject or not customer_address:
        return []
    query = {
        "stream_id": stream_id,
        "normalized_subject": normalized_subject,
        "customer_key": customer_address.lower(),
    }
    cursor = db[COLLECTION].find(query, _CANDIDATE_FIELDS).sort([("last_message_at", DESCENDING)]).limit(20)
    return [_candidate(doc) for doc in await cursor.to_list(length=20)]


async def find_by_origin(db: AsyncDatabase, stream_id: str, origin_key: str) -> dict[str, Any] | None:
    return await db[COLLECTION].find_one({"stream_id": stream_id, "origin_key": origin_key})


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
    """The conversation opened by the message with `origin_key`, created unless it already exists."""
    doc = {
        "_id": uuid.uuid4().hex,
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
        "created_at": started_at,
        "updated_at": utcnow(),
        "thread_keys": [],
        "origin_key": origin_key,
        "search_terms": [search_snippet(subject, customer.get("name"), customer.get("address"))],
    }
    return await insert_once(db[COLLECTION], doc, {"stream_id": stream_id, "origin_key": origin_key})


async def record_message(
    db: AsyncDatabase,
    conversation_id: str,
    *,
    message_count: int,
    message_at: datetime,
    thread_key: str | None,
    snippet: str | None,
    inbound: bool,
) -> None:
    """Fold a stored message into its conversation; safe to repeat (counts only rise, sets only grow).

    A customer writing again reopens a pending or closed conversation.
    """
    update: dict[str, Any] = {
        "$max": {"message_count": message_count, "last_message_at": message_at},
        "$set": {"updated_at": utcnow()},
    }
    add: dict[str, Any] = {}
    if thread_key:
        add["thread_keys"] = thread_key
    if snippet and message_count <= MAX_SEARCH_TERMS:  # bounded: a long thread stops adding snippets
        add["search_terms"] = snippet
    if add:
        update["$addToSet"] = add
    if inbound:
        update["$max"]["last_inbound_at"] = message_at
    await db[COLLECTION].update_one({"_id": conversation_id}, update)
    if inbound:
        await db[COLLECTION].update_one(
            {"_id": conversation_id, "status": {"$in": ["pending", "closed"]}}, {"$set": {"status": "open"}}
        )


async def get(db: AsyncDatabase, account_id: str, conversation_id: str) -> dict[str, Any] | None:
    return await db[COLLECTION].find_one({"_id": conversation_id, "account_id": account_id}, LIST_PROJECTION)


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
    q: str | None = None,
) -> dict[str, Any]:
    query: dict[str, Any] = {"account_id": account_id}
    for field, value in (
        ("topic_id", topic_id),
        ("stream_id", stream_id),
        ("status", status),
        ("tags", tag),
        ("assignee", assignee),
    ):
        if value is not None:
            query[field] = value
    if q and q.strip():
        query["search_terms"] = {"$regex": re.escape(" ".join(q.split()).lower())}
    return query


async def list_page(
    db: AsyncDatabase, query: dict[str, Any], *, limit: int, after: dict[str, Any] | None
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """Newest activity first, `_id` breaking ties, keyset-paginated (a deep page costs what the first does)."""
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


async def apply_tag_changes(
    db: AsyncDatabase, account_id: str, conversation_id: str, *, add: list[str], remove: list[str]
) -> None:
    if add:
        await db[COLLECTION].update_one(
            {"_id": conversation_id, "account_id": account_id}, {"$addToSet": {"tags": {"$each": add}}}
        )
    if remove:
        await db[COLLECTION].update_one(
            {"_id": conversation_id, "account_id": account_id}, {"$pullAll": {"tags": remove}}
        )


async def add_thread_key(db: AsyncDatabase, conversation_id: str, message_id_header: str) -> None:
    await db[COLLECTION].update_one({"_id": conversation_id}, {"$addToSet": {"thread_keys": message_id_header}})
