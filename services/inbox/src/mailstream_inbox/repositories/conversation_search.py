"""The search terms of conversations, one document per conversation, apart from `conversations`.

A search document:
    _id: the conversation's id, account_id, terms: lower-cased snippets (subject and customer of the conversation,
    the start of each message) that `q` matches.

Why apart: the terms are most of a conversation's bytes, and FerretDB v1 decodes every document of a collection
for any list (it pushes down no filter but `_id` equality). Kept in `conversations`, every list paid for decoding
them; here only a search does.

Writers hold the conversation's lock (`conversations._conversation_lock`): FerretDB v1 applies an update as
read-modify-write without isolation, so two concurrent `$addToSet`s could lose one. Every write is an
`$addToSet` upsert, so a redelivered mail adds nothing twice and a search document missing after a crash is
created by the next write.

Conversations written before the split still hold their terms in `conversations.search_terms`; the search
query matches those too (`conversations.search_query`), so they stay searchable without a migration.
"""

import contextlib
import re
from typing import Any

from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

COLLECTION = "conversation_search"
MAX_TERMS = 41  # the conversation's own snippet and the first 40 messages': a long thread stops adding

INDEXES = {COLLECTION: [IndexModel([("account_id", ASCENDING)], name="conversation_search_by_account")]}


def term_pattern(q: str | None) -> str | None:
    """The regex `q` becomes: whitespace-normalised, lower-cased, every character literal; None for no search."""
    if not q or not q.strip():
        return None
    return re.escape(" ".join(q.split()).lower())


async def add_terms(db: AsyncDatabase, conversation_id: str, account_id: str, terms: list[str]) -> None:
    """Add `terms` to the conversation's search document (creating it) while it holds fewer than MAX_TERMS.

    The caller holds the conversation's lock. Idempotent: `$addToSet` ignores a term already there.
    """
    terms = [t for t in terms if t]
    if not terms:
        return
    # A full document does not match the filter, so the upsert tries to insert a second `_id` and fails: that is
    # the "full" answer, on MongoDB and FerretDB alike.
    with contextlib.suppress(DuplicateKeyError):
        await db[COLLECTION].update_one(
            {"_id": conversation_id, f"terms.{MAX_TERMS - 1}": {"$exists": False}},
            {"$addToSet": {"terms": {"$each": terms}}, "$setOnInsert": {"account_id": account_id}},
            upsert=True,
        )


async def matching_ids(db: AsyncDatabase, account_id: str, pattern: str) -> list[str]:
    """Ids of the account's conversations whose search document matches `pattern` (a scan of this collection)."""
    cursor = db[COLLECTION].find({"account_id": account_id, "terms": {"$regex": pattern}}, {"_id": 1})
    return [doc["_id"] async for doc in cursor]


async def get(db: AsyncDatabase, conversation_id: str) -> dict[str, Any] | None:
    return await db[COLLECTION].find_one({"_id": conversation_id})
