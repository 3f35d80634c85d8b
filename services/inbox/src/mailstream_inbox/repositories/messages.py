"""Messages of conversations, inbound and outbound. Inbox is the only writer.

A message document:
    _id, account_id, conversation_id, stream_id, direction inbound|outbound, kind (outbound: reply|auto_reply),
    from {name,address}, to [..], cc [..], subject, text, html (sanitised), remote_images_blocked,
    headers [{name, value}] (ordered, repeatable, names may contain dots: never a mapping),
    attachments [{id, filename, content_type, size, sha256, part_id, content_id, inline}],
    message_id_header, in_reply_to [..], references [..], authentication {spf,dkim,dmarc,header} | None,
    forwarded {method, by, original_from, ...} | None, customer {name,address},
    delivery {status queued|sent|failed, detail, updated_at, attempt, smtp_code, version} | None (outbound only),
    raw_blob_id (sha256 in `blobs`), dedup_key, created_at, parse_warnings [..],
    published (the follow-up event was confirmed by the broker), pending_event (an outbound message's
    ReplyRequested, kept until the broker confirmed it so a redelivery can send exactly that again),
    applied_rules [rule ids whose actions ran for this message as trigger].

Idempotency key: unique (stream_id, dedup_key); dedup_key is the Message-ID header, or `sha256:<raw digest>` when
the mail has none, or our own id for an outbound message.
"""

from datetime import timedelta
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from mailstream_common.contracts import utcnow
from mailstream_common.mongo import insert_once

from . import keyset_page

COLLECTION = "messages"
PUBLIC_PROJECTION = {"pending_event": 0, "search": 0}

INDEXES = {
    COLLECTION: [
        IndexModel([("stream_id", ASCENDING), ("dedup_key", ASCENDING)], unique=True, name="messages_dedup"),
        IndexModel(
            [("conversation_id", ASCENDING), ("created_at", ASCENDING), ("_id", ASCENDING)],
            name="messages_by_conversation",
        ),
        IndexModel(
            [("conversation_id", ASCENDING), ("direction", ASCENDING), ("created_at", DESCENDING)],
            name="messages_last_by_direction",
        ),
        IndexModel([("account_id", ASCENDING), ("attachments.id", ASCENDING)], name="messages_attachment"),
    ]
}


async def insert(db: AsyncDatabase, doc: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """Store a message unless one with its (stream_id, dedup_key) exists: (stored, created)."""
    return await insert_once(db[COLLECTION], doc, {"stream_id": doc["stream_id"], "dedup_key": doc["dedup_key"]})


async def find_by_dedup_key(db: AsyncDatabase, stream_id: str, dedup_key: str) -> dict[str, Any] | None:
    return await db[COLLECTION].find_one({"stream_id": stream_id, "dedup_key": dedup_key})


async def count_in_conversation(db: AsyncDatabase, conversation_id: str) -> int:
    return await db[COLLECTION].count_documents({"conversation_id": conversation_id})


async def get(db: AsyncDatabase, account_id: str, message_id: str) -> dict[str, Any] | None:
    return await db[COLLECTION].find_one({"_id": message_id, "account_id": account_id}, PUBLIC_PROJECTION)


async def get_internal(db: AsyncDatabase, message_id: str) -> dict[str, Any] | None:
    return await db[COLLECTION].find_one({"_id": message_id})


async def find_attachment(db: AsyncDatabase, account_id: str, attachment_id: str) -> dict[str, Any] | None:
    """The attachment record (from its message) of this account, or None."""
    doc = await db[COLLECTION].find_one({"account_id": account_id, "attachments.id": attachment_id}, {"attachments": 1})
    if doc is None:
        return None
    return next((a for a in doc.get("attachments", []) if a.get("id") == attachment_id), None)


async def list_page(
    db: AsyncDatabase, account_id: str, conversation_id: str, *, limit: int, after: dict[str, Any] | None
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """Oldest first, keyset-paginated."""
    return await keyset_page(
        db[COLLECTION],
        {"conversation_id": conversation_id, "account_id": account_id},
        limit=limit,
        after=after,
        sort_field="created_at",
        descending=False,
        projection={**PUBLIC_PROJECTION, "headers": 0},
    )


async def last_inbound(db: AsyncDatabase, conversation_id: str) -> dict[str, Any] | None:
    cursor = (
        db[COLLECTION]
        .find({"conversation_id": conversation_id, "direction": "inbound"}, {"message_id_header": 1, "references": 1})
        .sort([("created_at", DESCENDING)])
        .limit(1)
    )
    docs = await cursor.to_list(length=1)
    return docs[0] if docs else None


async def claim_publication(db: AsyncDatabase, message_id: str, lease_seconds: float) -> bool:
    """Take the right to publish this message's follow-up event for `lease_seconds`; False if another worker
    holds it (two copies of one mail handled at once) or it was published already. A holder that crashed loses
    the lease when it runs out, so a later redelivery can still publish."""
    now = utcnow()
    result = await db[COLLECTION].update_one(
        {
            "_id": message_id,
            "published": {"$ne": True},
            "$or": [
                {"publish_claimed_at": None},
                {"publish_claimed_at": {"$lt": now - timedelta(seconds=lease_seconds)}},
            ],
        },
        {"$set": {"publish_claimed_at": now}},
    )
    return result.modified_count == 1


async def mark_published(db: AsyncDatabase, message_id: str) -> None:
    await db[COLLECTION].update_one({"_id": message_id}, {"$set": {"published": True}, "$unset": {"pending_event": ""}})


async def mark_failed_to_queue(db: AsyncDatabase, message_id: str, detail: str) -> None:
    await db[COLLECTION].update_one(
        {"_id": message_id, "delivery.status": "queued"},
        {"$set": {"delivery.status": "failed", "delivery.detail": detail}},
    )


async def compare_and_set_delivery(
    db: AsyncDatabase, message_id: str, expected_version: int, delivery: dict[str, Any], *, event_pending: bool
) -> dict[str, Any] | None:
    """Replace `delivery` only if its version is still `expected_version` (a concurrent report may have moved it);
    the document after the change, or None when it lost that race."""
    return await db[COLLECTION].find_one_and_update(
        {"_id": message_id, "delivery.version": expected_version},
        {"$set": {"delivery": delivery, "delivery_event_pending": event_pending}},
        return_document=ReturnDocument.AFTER,
    )


async def clear_delivery_event(db: AsyncDatabase, message_id: str) -> None:
    await db[COLLECTION].update_one({"_id": message_id}, {"$set": {"delivery_event_pending": False}})


async def set_raw_blob(db: AsyncDatabase, message_id: str, sha256: str, *, overwrite: bool) -> None:
    query: dict[str, Any] = {"_id": message_id}
    if not overwrite:
        query["raw_blob_id"] = None
    await db[COLLECTION].update_one(query, {"$set": {"raw_blob_id": sha256}})


async def mark_rule_applied(db: AsyncDatabase, message_id: str, rule_id: str) -> None:
    await db[COLLECTION].update_one({"_id": message_id}, {"$addToSet": {"applied_rules": rule_id}})
