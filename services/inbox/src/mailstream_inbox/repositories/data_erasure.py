"""Inbox's part of a data erasure (issue 17): the queries; what goes and what stays is `data_erasure.py` (pure).

Where the address is found: the conversations it took part in (`participants`: the customer and To/Cc of inbound
mail, and `terms`: every address in a subject or the start of a text), then their messages, tested one by one.

Order, so that a crash anywhere leaves work a re-run finds and finishes: per conversation, the blobs of the
messages to erase (unless a kept message shares them), their timeline entries, the messages, and last the
conversation's own update or deletion (until then the address still finds it). The live-event journal is swept
after all conversations.
"""

from datetime import datetime
from typing import Any

from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase

from .. import data_erasure as plan
from . import blobs as blobs_repo
from . import conversations as conversations_repo
from . import live_events as live_events_repo
from . import messages as messages_repo
from . import timeline as timeline_repo

INDEXES = {
    conversations_repo.COLLECTION: [
        IndexModel([("account_id", ASCENDING), ("participants", ASCENDING)], name="conversations_by_participant")
    ],
    # Is a blob still needed by a message that stays? (blobs are shared by digest)
    messages_repo.COLLECTION: [
        IndexModel([("raw_blob_id", ASCENDING)], name="messages_by_raw_blob"),
        IndexModel([("attachments.sha256", ASCENDING)], name="messages_by_attachment_blob"),
    ],
}


async def conversations_naming(db: AsyncDatabase, account_id: str, address: str) -> list[str]:
    """Ids of the account's conversations the address took part in or is a search term of."""
    found: dict[str, None] = {}
    # `participants` holds the customer too; each query is one index's prefix (account, value).
    for query in ({"participants": address}, {"terms": address}):
        cursor = db[conversations_repo.COLLECTION].find({"account_id": account_id, **query}, {"_id": 1})
        async for doc in cursor:
            found.setdefault(doc["_id"], None)
    return list(found)


async def _messages_of(db: AsyncDatabase, conversation_id: str) -> list[dict[str, Any]]:
    cursor = (
        db[messages_repo.COLLECTION]
        .find({"conversation_id": conversation_id})
        .sort([("created_at", ASCENDING), ("_id", ASCENDING)])
    )
    return await cursor.to_list(None)


async def find_targets(db: AsyncDatabase, account_id: str, address: str) -> tuple[list[str], list[str]]:
    """(conversation ids, message ids) an erasure of `address` would touch now: what the other services are told."""
    conversation_ids, message_ids = [], []
    for conversation_id in await conversations_naming(db, account_id, address):
        named = [m["_id"] for m in await _messages_of(db, conversation_id) if plan.names_address(m, address)]
        conversation_ids.append(conversation_id)
        message_ids += named
    return conversation_ids, message_ids


async def erase(
    db: AsyncDatabase,
    account_id: str,
    *,
    address: str | None,
    conversation_ids: list[str],
    older_than: datetime | None = None,
) -> dict[str, int]:
    """Erase the address from the account (or, address None, the listed conversations whole); re-runnable."""
    counts = {"messages": 0, "conversations_deleted": 0, "conversations_kept": 0, "blobs": 0, "timeline": 0}
    candidates = list(dict.fromkeys(conversation_ids))
    if address is not None:
        candidates = list(dict.fromkeys([*candidates, *await conversations_naming(db, account_id, address)]))
    erased_ids: set[str] = set()
    deleted_conversations: set[str] = set()
    for conversation_id in candidates:
        await _erase_conversation(
            db, account_id, conversation_id, address, older_than, counts, erased_ids, deleted_conversations
        )
    counts["live_events"] = await _drop_live_events(db, account_id, address, erased_ids | deleted_conversations)
    return counts


MAX_PLAN_ATTEMPTS = 5


async def _erase_conversation(
    db: AsyncDatabase,
    account_id: str,
    conversation_id: str,
    address: str | None,
    older_than: datetime | None,
    counts: dict[str, int],
    erased_ids: set[str],
    deleted_conversations: set[str],
) -> None:
    """One conversation: its plan, then the writes. The conversation's last write is guarded by the messages it
    was planned from (`message_ids` unchanged): a message folded in meanwhile makes it miss, and the conversation is
    planned again with that message, so a new message is never lost to a stale count or deletion."""
    conversations = db[conversations_repo.COLLECTION]
    for _ in range(MAX_PLAN_ATTEMPTS):
        conversation = await conversations.find_one({"_id": conversation_id, "account_id": account_id})
        if conversation is None:
            return
        messages = await _messages_of(db, conversation_id)
        decided = plan.plan_conversation(conversation, messages, address, older_than=older_than)
        if decided is None:
            return
        going = [m for m in messages if m["_id"] in set(decided.erase_message_ids)]
        if not going and not decided.delete_conversation and not plan.mentions(conversation, [address or ""]):
            return  # erased by an earlier run: nothing names the address any more
        counts["blobs"] += await _drop_blobs(db, going)
        counts["timeline"] += await _drop_timeline(db, decided, address)
        if going:
            result = await db[messages_repo.COLLECTION].delete_many(
                {"_id": {"$in": [m["_id"] for m in going]}, "account_id": account_id}
            )
            counts["messages"] += result.deleted_count
        erased_ids.update(m["_id"] for m in going)
        unchanged = {
            "_id": conversation_id,
            "account_id": account_id,
            "message_ids": conversation.get("message_ids", {"$exists": False}),
        }
        if decided.delete_conversation:
            if (await conversations.delete_one(unchanged)).deleted_count:
                deleted_conversations.add(conversation_id)
                counts["conversations_deleted"] += 1
                return
        elif (await conversations.update_one(unchanged, {"$set": decided.update})).matched_count:
            counts["conversations_kept"] += 1
            return
    raise RuntimeError(f"conversation {conversation_id} kept changing during its erasure; the broker retries")


async def _drop_blobs(db: AsyncDatabase, going: list[dict[str, Any]]) -> int:
    """Delete the blobs only these messages use (another message, kept or of another account, may share one);
    how many blobs (not chunks) went."""
    going_ids = {m["_id"] for m in going}
    removed = 0
    for sha256 in plan.blob_ids(going):
        if (
            not await _used_elsewhere(db, sha256, going_ids)
            and (await db[blobs_repo.COLLECTION].delete_many({"sha256": sha256})).deleted_count
        ):
            removed += 1
    return removed


async def _used_elsewhere(db: AsyncDatabase, sha256: str, going_ids: set[str]) -> bool:
    """Whether a message other than those going refers to the blob. One equality read per field, each its index's
    whole filter (an `$or`, or a `$nin` next to it, made SecantusDB walk the collection); at most one more message
    than those going is read."""
    for field in ("raw_blob_id", "attachments.sha256"):
        cursor = db[messages_repo.COLLECTION].find({field: sha256}, {"_id": 1}).limit(len(going_ids) + 1)
        if any(doc["_id"] not in going_ids for doc in await cursor.to_list(None)):
            return True
    return False


async def _drop_timeline(db: AsyncDatabase, decided: plan.ConversationPlan, address: str | None) -> int:
    collection = db[timeline_repo.COLLECTION]
    if decided.delete_conversation:
        return (await collection.delete_many({"conversation_id": decided.conversation_id})).deleted_count
    needles = [*decided.erase_message_ids, *([address] if address else [])]
    doomed = [
        entry["_id"]
        async for entry in collection.find({"conversation_id": decided.conversation_id})
        if plan.mentions(entry, needles)
    ]
    if not doomed:
        return 0
    return (await collection.delete_many({"_id": {"$in": doomed}})).deleted_count


async def _drop_live_events(db: AsyncDatabase, account_id: str, address: str | None, ids: set[str]) -> int:
    """The account's journal is short-lived (a TTL of hours): read it through, drop what names the address or an
    erased message or conversation."""
    needles = [*ids, *([address] if address else [])]
    if not needles:
        return 0
    collection = db[live_events_repo.LIVE_EVENTS]
    doomed = [
        entry["_id"]
        async for entry in collection.find({"account_id": account_id}, {"_id": 1, "data": 1})
        if plan.mentions(entry.get("data"), needles)
    ]
    if not doomed:
        return 0
    return (await collection.delete_many({"_id": {"$in": doomed}})).deleted_count


# --- export ---

_INTERNAL_FIELDS = ("message_ids", "pending_event", "publishing", "delivery_announcement", "pending_since")


def _public(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k not in _INTERNAL_FIELDS}


async def export_records(
    db: AsyncDatabase, account_id: str, conversation_ids: list[str], message_ids: list[str]
) -> dict[str, list[dict[str, Any]]]:
    """The conversations and messages (as stored, less bookkeeping) an export found naming the person."""
    conversations = db[conversations_repo.COLLECTION].find({"_id": {"$in": conversation_ids}, "account_id": account_id})
    messages = db[messages_repo.COLLECTION].find({"_id": {"$in": message_ids}, "account_id": account_id})
    return {
        "conversations": [_public(doc) async for doc in conversations],
        "messages": [_public(doc) async for doc in messages.sort([("created_at", ASCENDING), ("_id", ASCENDING)])],
    }


async def raw_mail(db: AsyncDatabase, account_id: str, message_ids: list[str]) -> list[tuple[Any, bytes]]:
    """(received at, raw bytes) of those messages that kept their raw mail, oldest first."""
    cursor = (
        db[messages_repo.COLLECTION]
        .find({"_id": {"$in": message_ids}, "account_id": account_id}, {"created_at": 1, "raw_blob_id": 1})
        .sort([("created_at", ASCENDING), ("_id", ASCENDING)])
    )
    found = []
    async for doc in cursor:
        raw = await blobs_repo.get(db, doc["raw_blob_id"]) if doc.get("raw_blob_id") else None
        if raw is not None:
            found.append((doc["created_at"], raw))
    return found
