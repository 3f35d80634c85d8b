"""The writes that reorganise conversations and put time on them: moving a message between conversations (merge,
split, undo), the merge link, snoozes and held (scheduled) replies. Messages and conversations are both touched, so
each step is one guarded single-document update that may be repeated: a move interrupted anywhere is finished by
doing it again.

Fields this adds:
    conversations: merged_into (id of the conversation it was merged into, or absent/None),
        snooze {until, token, at, previous_status} while status is 'snoozed' (a stale one may stay after the
        status changed otherwise; only a 'snoozed' status makes it count);
    messages: previous_conversation_id (where the message was before its last move),
        schedule {send_at, state held|sending|sent, token, scheduled_at} on a held (scheduled) reply.
"""

from typing import Any

from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from mailstream_common.contracts import utcnow

from . import conversations as conversations_repo
from . import messages as messages_repo

CONVERSATIONS = conversations_repo.COLLECTION
MESSAGES = messages_repo.COLLECTION

# The held replies of a conversation are found through `messages_by_conversation` (a conversation has few messages
# on a page's scale); no index of its own.
INDEXES: dict[str, list] = {}


# --- moving messages ---


async def message_ids_of(db: AsyncDatabase, conversation_id: str) -> list[dict[str, Any]]:
    """Every message of the conversation (ids and where each came from), oldest first."""
    cursor = (
        db[MESSAGES]
        .find({"conversation_id": conversation_id}, {"_id": 1, "previous_conversation_id": 1, "created_at": 1})
        .sort([("created_at", ASCENDING), ("_id", ASCENDING)])
    )
    return await cursor.to_list(length=None)


async def reassign_message(db: AsyncDatabase, message_id: str, source_id: str, target_id: str) -> None:
    """Point the message (and so its Message-ID, a thread key) at `target_id`, if it is still in `source_id`."""
    await db[MESSAGES].update_one(
        {"_id": message_id, "conversation_id": source_id},
        {"$set": {"conversation_id": target_id, "previous_conversation_id": source_id}},
    )


async def unfold_message(db: AsyncDatabase, conversation_id: str, message_id: str) -> None:
    """Uncount the message from the conversation (only if it is counted there)."""
    await db[CONVERSATIONS].update_one(
        {"_id": conversation_id, "message_ids": message_id},
        {"$pull": {"message_ids": message_id}, "$inc": {"message_count": -1}, "$set": {"updated_at": utcnow()}},
    )


async def fold_message(db: AsyncDatabase, conversation_id: str, message: dict[str, Any]) -> None:
    """Count the message in the conversation (once) and give it the message's search terms; no status change."""
    await db[CONVERSATIONS].update_one(
        {"_id": conversation_id, "message_ids": {"$ne": message["_id"]}},
        {
            "$push": {"message_ids": message["_id"]},
            "$inc": {"message_count": 1},
            "$max": {"last_message_at": message["created_at"]},
            "$set": {"updated_at": utcnow()},
        },
    )
    terms = conversations_repo.message_terms(message.get("subject"), message.get("text"))
    if terms:
        await db[CONVERSATIONS].update_one(
            {"_id": conversation_id, f"terms.{conversations_repo.MAX_TERMS - 1}": {"$exists": False}},
            {"$addToSet": {"terms": {"$each": terms}}},
        )


async def refresh_latest(db: AsyncDatabase, conversation_id: str) -> None:
    """Recompute the newest message and the newest customer message from the messages themselves (after a move
    took some away, `$max` cannot move them back). An empty conversation keeps its last activity."""
    newest = await db[MESSAGES].find_one(
        {"conversation_id": conversation_id}, {"created_at": 1}, sort=[("created_at", DESCENDING)]
    )
    inbound = await db[MESSAGES].find_one(
        {"conversation_id": conversation_id, "direction": "inbound"},
        {"created_at": 1},
        sort=[("created_at", DESCENDING)],
    )
    changes: dict[str, Any] = {
        "last_inbound_at": inbound["created_at"] if inbound else None,
        "last_inbound_message_id": inbound["_id"] if inbound else None,
    }
    if newest is not None:
        changes["last_message_at"] = newest["created_at"]
    await db[CONVERSATIONS].update_one({"_id": conversation_id}, {"$set": changes})


async def mark_merged(db: AsyncDatabase, source_id: str, target_id: str) -> dict[str, Any] | None:
    """Link `source_id` to `target_id` unless it is linked elsewhere; the document after, or None."""
    return await db[CONVERSATIONS].find_one_and_update(
        {"_id": source_id, "merged_into": {"$in": [None, target_id]}},
        # $min: a repeated merge keeps the first time, which names the operation on the timeline
        {"$set": {"merged_into": target_id, "updated_at": utcnow()}, "$min": {"merged_at": utcnow()}},
        projection=conversations_repo.INTERNAL_PROJECTION,
        return_document=ReturnDocument.AFTER,
    )


async def clear_merged(db: AsyncDatabase, source_id: str, target_id: str) -> dict[str, Any] | None:
    return await db[CONVERSATIONS].find_one_and_update(
        {"_id": source_id, "merged_into": target_id},
        {"$set": {"merged_into": None, "updated_at": utcnow()}, "$unset": {"merged_at": ""}},
        projection=conversations_repo.INTERNAL_PROJECTION,
        return_document=ReturnDocument.AFTER,
    )


async def merge_links(db: AsyncDatabase, conversation_id: str, hops: int) -> dict[str, str | None]:
    """The `merged_into` links from `conversation_id` on, at most `hops` of them."""
    links: dict[str, str | None] = {}
    current: str | None = conversation_id
    while current is not None and current not in links and len(links) < hops:
        doc = await db[CONVERSATIONS].find_one({"_id": current}, {"merged_into": 1})
        links[current] = doc.get("merged_into") if doc else None
        current = links[current]
    return links


# --- snooze ---


async def start_snooze(
    db: AsyncDatabase, account_id: str, conversation_id: str, snooze: dict[str, Any]
) -> dict[str, Any] | None:
    return await db[CONVERSATIONS].find_one_and_update(
        {"_id": conversation_id, "account_id": account_id, "merged_into": None},
        {"$set": {"status": "snoozed", "snooze": snooze, "updated_at": utcnow()}},
        projection=conversations_repo.LIST_PROJECTION,
        return_document=ReturnDocument.AFTER,
    )


async def end_snooze(db: AsyncDatabase, conversation_id: str, guard: dict[str, Any]) -> dict[str, Any] | None:
    """Reopen a snoozed conversation if `guard` still holds; the document after, or None (nothing to do)."""
    return await db[CONVERSATIONS].find_one_and_update(
        {**guard, "_id": conversation_id, "status": "snoozed"},
        {"$set": {"status": "open", "updated_at": utcnow()}, "$unset": {"snooze": ""}},
        projection=conversations_repo.LIST_PROJECTION,
        return_document=ReturnDocument.AFTER,
    )


# --- held replies ---


async def begin_sending(db: AsyncDatabase, message_id: str, token: str) -> dict[str, Any] | None:
    """held -> sending, exactly once; else the message already sending under this token (a redelivered wake-up
    after a crash, which finishes the outbox publish), or None (cancelled, sent, or another schedule)."""
    taken = await db[MESSAGES].find_one_and_update(
        {"_id": message_id, "schedule.token": token, "schedule.state": "held"},
        {"$set": {"schedule.state": "sending", "schedule.sending_at": utcnow()}},
        return_document=ReturnDocument.AFTER,
    )
    if taken is not None:
        return taken
    return await db[MESSAGES].find_one({"_id": message_id, "schedule.token": token, "schedule.state": "sending"})


async def finish_sending(db: AsyncDatabase, message_id: str, token: str) -> None:
    await db[MESSAGES].update_one(
        {"_id": message_id, "schedule.token": token, "schedule.state": "sending"},
        {"$set": {"schedule.state": "sent", "schedule.sent_at": utcnow()}},
    )


async def take_held(
    db: AsyncDatabase, message_id: str, *, account_id: str | None = None, token: str | None = None
) -> dict[str, Any] | None:
    """Remove a held reply that has not started to leave (one atomic delete: it never races the send)."""
    query: dict[str, Any] = {"_id": message_id, "schedule.state": "held"}
    if account_id is not None:
        query["account_id"] = account_id
    if token is not None:
        query["schedule.token"] = token
    return await db[MESSAGES].find_one_and_delete(query)


async def held_replies(db: AsyncDatabase, account_id: str, conversation_id: str, *, limit: int) -> list[dict[str, Any]]:
    """The conversation's held replies, soonest first (a handful: no cursor)."""
    query: dict[str, Any] = {"account_id": account_id, "conversation_id": conversation_id, "schedule.state": "held"}
    cursor = (
        db[MESSAGES]
        .find(query, messages_repo.PAGE_PROJECTION)
        .sort([("schedule.send_at", ASCENDING), ("_id", ASCENDING)])
        .limit(limit)
    )
    return await cursor.to_list(length=limit)
