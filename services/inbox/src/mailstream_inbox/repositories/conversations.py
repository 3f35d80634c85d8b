"""Conversations: one customer's thread on one stream. Inbox is the only writer.

A conversation document:
    _id, account_id, topic_id, stream_id, subject (of the first message, prefixes stripped), normalized_subject,
    customer {name, address}, customer_key (lower-case address), status open|pending|closed, tags, assignee,
    priority, message_count, last_message_at, created_at, updated_at,
    message_ids: the ids of its messages, what makes counting idempotent (never read by the API),
    terms: its search terms (`search_terms.py`), at most about MAX_TERMS,
    last_inbound_message_id / last_inbound_at: the newest customer message (what a reply threads on),
    origin_key: the dedup key of the message that opened it; `_id` is derived from (stream, origin_key), so a
        redelivered first mail finds the conversation it created instead of opening a second one.
    participants: lower-case addresses of the customer and the people on To/Cc of its inbound mail, never the
        account's own (`participants.py`), at most MAX_PARTICIPANTS ($addToSet, idempotent);
    reply_token: set the first time it is replied to (`reply_tokens.py`), looked up per stream.

Concurrency: messages are folded in by single-document atomic updates, so any number of workers may fold messages
into one conversation at once. A message is counted by the same update that appends its id to `message_ids`,
guarded by "not in `message_ids` yet", so a redelivered mail never counts twice; `last_message_at` only moves
forward (`$max`); the newest inbound message is set under a guard on its time; terms are `$addToSet`.

Search: `q` becomes words (`search_terms.query_terms`), each of which must be a prefix of one of the conversation's
terms; the list's filters, order and cursor apply unchanged, in one query. The `conversations_search` index
(account, term, then the list order) serves it; limits in services/inbox/README.md.
"""

from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from mailstream_common.contracts import utcnow
from mailstream_common.mongo import insert_once

from .. import search_terms
from ..conversation_threading import ThreadCandidate
from ..participants import MAX_PARTICIPANTS
from .messages import keyed_id
from .pages import keyset_page

COLLECTION = "conversations"
SNIPPET_CHARS = 400  # the start of a message that is searchable
TERMS_PER_MESSAGE = 100
MAX_TERMS = 1000  # a long thread stops adding terms: the document stays small
_CANDIDATE_FIELDS = {
    "_id": 1,
    "stream_id": 1,
    "customer_key": 1,
    "normalized_subject": 1,
    "last_message_at": 1,
    "participants": 1,
    "reply_token": 1,
}
# The arrays only writers need: every read for the API or a consumer leaves them out.
INTERNAL_PROJECTION = {"message_ids": 0, "terms": 0}
LIST_PROJECTION = INTERNAL_PROJECTION


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
        _list_index("terms", name="conversations_search"),
        IndexModel([("stream_id", ASCENDING), ("origin_key", ASCENDING)], unique=True, name="conversations_origin"),
        # The subject fallback of threading; conversations without a subject are never looked up by it.
        IndexModel(
            [
                ("stream_id", ASCENDING),
                ("customer_key", ASCENDING),
                ("normalized_subject", ASCENDING),
                ("last_message_at", DESCENDING),
            ],
            name="conversations_by_subject",
            partialFilterExpression={"normalized_subject": {"$gt": ""}},
        ),
        # The subject fallback for a participant other than the customer (a Cc'd colleague answering).
        IndexModel(
            [
                ("stream_id", ASCENDING),
                ("participants", ASCENDING),
                ("normalized_subject", ASCENDING),
                ("last_message_at", DESCENDING),
            ],
            name="conversations_by_participant_subject",
            partialFilterExpression={"normalized_subject": {"$gt": ""}},
        ),
        # Threading by the token our outbound mail carries. Not partial: SecantusDB walked the whole collection for
        # an equality read on a partial index (`bench/inbox_threading_lookups.py`); conversations without a token
        # are indexed under null, which costs little.
        IndexModel([("stream_id", ASCENDING), ("reply_token", ASCENDING)], name="conversations_by_reply_token"),
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
        participants=frozenset(doc.get("participants") or ()),
        reply_token=doc.get("reply_token"),
    )


async def candidates(db: AsyncDatabase, keys_by_conversation: dict[str, set[str]]) -> list[ThreadCandidate]:
    """Threading candidates for conversations found through referenced Message-IDs (which are their keys)."""
    if not keys_by_conversation:
        return []
    cursor = db[COLLECTION].find({"_id": {"$in": list(keys_by_conversation)}}, _CANDIDATE_FIELDS)
    return [_candidate(doc, frozenset(keys_by_conversation[doc["_id"]])) async for doc in cursor]


async def find_by_subject(
    db: AsyncDatabase, stream_id: str, normalized_subject: str, customer_address: str
) -> list[ThreadCandidate]:
    """The customer's most recent conversation on the stream with this subject (what the fallback may join)."""
    if not normalized_subject or not customer_address:
        return []
    doc = await db[COLLECTION].find_one(
        {"stream_id": stream_id, "customer_key": customer_address.lower(), "normalized_subject": normalized_subject},
        _CANDIDATE_FIELDS,
        sort=[("last_message_at", DESCENDING)],
    )
    return [_candidate(doc)] if doc is not None else []


async def find_by_origin(db: AsyncDatabase, stream_id: str, origin_key: str) -> dict[str, Any] | None:
    return await db[COLLECTION].find_one({"_id": conversation_id_for(stream_id, origin_key)}, INTERNAL_PROJECTION)


def message_terms(subject: str | None, text: str | None) -> list[str]:
    """What a message adds to its conversation's search terms: its subject and the start of its text."""
    return search_terms.terms_of(subject, (text or "")[:SNIPPET_CHARS], limit=TERMS_PER_MESSAGE)


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
        "_id": conversation_id_for(stream_id, origin_key),
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
        "terms": search_terms.terms_of(subject, customer.get("name"), customer.get("address"), limit=TERMS_PER_MESSAGE),
        "origin_key": origin_key,
    }
    return await insert_once(db[COLLECTION], doc, {"_id": doc["_id"]})


def newest_inbound_guard(conversation_id: str, message_at: datetime) -> dict[str, Any]:
    """The conversation whose newest inbound message is not newer than `message_at` (or that has none yet).

    One `$not` (a missing or null time is not newer), not an `$or` of the two cases: SecantusDB answers an `_id`
    filter with a top-level `$or` by walking the whole collection, so every stored mail cost more as the inbox grew
    (issue 12, `bench/inbox_store_growth.py`).
    """
    return {"_id": conversation_id, "last_inbound_at": {"$not": {"$gt": message_at}}}


async def record_message(
    db: AsyncDatabase,
    conversation_id: str,
    *,
    message_id: str,
    message_at: datetime,
    terms: list[str],
    inbound: bool,
) -> None:
    """Fold a stored message into its conversation; safe to repeat and to run concurrently (module docstring).

    A customer writing again reopens a pending or closed conversation (when the message is first counted).
    """
    conversations = db[COLLECTION]
    counted: dict[str, Any] = {
        "$push": {"message_ids": message_id},
        "$inc": {"message_count": 1},
        "$max": {"last_message_at": message_at},
        "$set": {"updated_at": utcnow(), **({"status": "open"} if inbound else {})},
    }
    await conversations.update_one({"_id": conversation_id, "message_ids": {"$ne": message_id}}, counted)
    if inbound:
        await conversations.update_one(
            newest_inbound_guard(conversation_id, message_at),
            {"$set": {"last_inbound_at": message_at, "last_inbound_message_id": message_id}},
        )
    if terms:
        # Repeating adds nothing ($addToSet); a full list takes no more (the guard).
        await conversations.update_one(
            {"_id": conversation_id, f"terms.{MAX_TERMS - 1}": {"$exists": False}},
            {"$addToSet": {"terms": {"$each": terms}}},
        )


async def get(db: AsyncDatabase, account_id: str, conversation_id: str) -> dict[str, Any] | None:
    return await db[COLLECTION].find_one({"_id": conversation_id, "account_id": account_id}, LIST_PROJECTION)


async def get_internal(db: AsyncDatabase, conversation_id: str) -> dict[str, Any] | None:
    return await db[COLLECTION].find_one({"_id": conversation_id}, INTERNAL_PROJECTION)


def list_query(
    account_id: str,
    *,
    topic_id: str | None = None,
    stream_id: str | None = None,
    status: str | None = None,
    tag: str | None = None,
    assignee: str | None = None,
    words: list[str] | None = None,
) -> dict[str, Any]:
    """The list's filter; with `words` (`search_terms.query_terms`), only conversations that have each as a term prefix."""
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
    if words:
        query["$and"] = [{"terms": {"$regex": search_terms.prefix_pattern(word)}} for word in words]
    return query


# The list index of each filter, most selective first: a list names the one of its first filter.
_LIST_INDEX_BY_FILTER = (
    ("stream_id", "conversations_by_stream"),
    ("topic_id", "conversations_by_topic"),
    ("tags", "conversations_by_tag"),
    ("assignee", "conversations_by_assignee"),
    ("status", "conversations_by_status"),
)


def list_index(query: dict[str, Any]) -> str | None:
    """The index a list (not a search) walks in its order; None for a search, whose best index depends on how
    common its words are (the planner's choice between the search index and a list index)."""
    if "$and" in query:
        return None
    return next((name for field, name in _LIST_INDEX_BY_FILTER if field in query), "conversations_list")


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
    db: AsyncDatabase,
    account_id: str,
    conversation_id: str,
    changes: dict[str, Any],
    *,
    expected: dict[str, Any] | None = None,
) -> dict[str, Any] | None:
    """Set status/tags/assignee/priority; the document after the change (None if not this account's, or if a field
    of `expected` no longer holds the value given there)."""
    return await db[COLLECTION].find_one_and_update(
        {**(expected or {}), "_id": conversation_id, "account_id": account_id},
        {"$set": {**changes, "updated_at": utcnow()}},
        projection=LIST_PROJECTION,
        return_document=ReturnDocument.AFTER,
    )


async def find_by_participant_subject(
    db: AsyncDatabase, stream_id: str, normalized_subject: str, address: str
) -> list[ThreadCandidate]:
    """The most recent conversation on the stream with this subject that `address` takes part in."""
    if not normalized_subject or not address:
        return []
    doc = await db[COLLECTION].find_one(
        {"stream_id": stream_id, "participants": address.lower(), "normalized_subject": normalized_subject},
        _CANDIDATE_FIELDS,
        sort=[("last_message_at", DESCENDING)],
    )
    return [_candidate(doc)] if doc is not None else []


async def find_by_reply_tokens(db: AsyncDatabase, stream_id: str, tokens: list[str]) -> list[ThreadCandidate]:
    """Conversations of this stream (never another's) holding one of the tokens."""
    found = []
    for token in dict.fromkeys(tokens):  # one or two in practice; an equality read each is the index's best case
        doc = await db[COLLECTION].find_one({"stream_id": stream_id, "reply_token": token}, _CANDIDATE_FIELDS)
        if doc is not None:
            found.append(_candidate(doc))
    return found


async def add_participants(db: AsyncDatabase, conversation_id: str, addresses: list[str]) -> bool:
    """Add lower-case addresses ($addToSet: repeating adds nothing); a full list takes no more (the guard).
    Whether the list changed."""
    if not addresses:
        return False
    result = await db[COLLECTION].update_one(
        {"_id": conversation_id, f"participants.{MAX_PARTICIPANTS - 1}": {"$exists": False}},
        {"$addToSet": {"participants": {"$each": addresses[:MAX_PARTICIPANTS]}}},
    )
    return result.modified_count > 0


async def ensure_reply_token(db: AsyncDatabase, conversation_id: str, candidate: str) -> str:
    """The conversation's reply token: `candidate` unless it has one already (two replies at once agree)."""
    await db[COLLECTION].update_one(
        {"_id": conversation_id, "reply_token": {"$exists": False}}, {"$set": {"reply_token": candidate}}
    )
    doc = await db[COLLECTION].find_one({"_id": conversation_id}, {"reply_token": 1})
    return (doc or {}).get("reply_token") or candidate
