"""Messages of conversations, inbound and outbound. Inbox is the only writer.

A message document:
    _id, account_id, conversation_id, stream_id, direction inbound|outbound, kind (outbound: reply|auto_reply),
    from {name,address}, to [..], cc [..], subject, text, html (sanitised), remote_images_blocked,
    headers [{name, value}] (ordered, repeatable, names may contain dots: never a mapping),
    attachments [{id, filename, content_type, size, sha256, part_id, content_id, inline}],
    message_id_header, in_reply_to [..], references [..], authentication {spf,dkim,dmarc,header} | None,
    forwarded {method, by, original_from, ...} | None, customer {name,address},
    delivery {status queued|sent|failed, detail, updated_at, attempt, smtp_code, version, report_id} | None
    (outbound only; each version is claimed in `delivery_claims` before it is written: consumers/delivery.py),
    raw_blob_id (sha256 in `blobs`), dedup_key, created_at, parse_warnings [..],
    published (the follow-up event was confirmed by the broker), pending_event (an outbound message's
    ReplyRequested, kept until the broker confirmed it so a redelivery can send exactly that again),
    applied_rules [rule ids whose actions ran for this message as trigger].

Idempotency key: (stream_id, dedup_key); dedup_key is the Message-ID header, or `sha256:<raw digest>` when the
mail has none, or our Message-ID (auto-replies: `auto_reply:<rule>:<trigger>`) for an outbound message.

Why `_id` is derived from that key (a name-based UUID, still 32 hex characters) instead of random: FerretDB v1 on
SQLite uses no secondary index (every query but an `_id` equality scans and decodes the whole collection, all
accounts), so every lookup on a hot path is a bare `_id` lookup (FerretDB hands that one to SQLite, several times cheaper than
a filter it evaluates itself, though still not an indexed seek there; on MongoDB it is the primary key): "is this mail stored already?" and "which conversation
holds the message with this Message-ID?" (threading by In-Reply-To/References) are both `message_id_for(...)`.
The unique (stream_id, dedup_key) index stays for MongoDB, where it also guards the key.
"""

import asyncio
import uuid
from datetime import timedelta
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from mailstream_common.contracts import utcnow
from mailstream_common.mongo import insert_once

COLLECTION = "messages"
CLAIMS = "publication_claims"  # short leases: who publishes a message's follow-up event (see claim_publication)
_NAMESPACE = uuid.UUID("6f1d3c2e-5b0a-4e8f-9a7b-2c4d6e8f0a1b")


def keyed_id(*parts: str) -> str:
    """A stable 32-hex id for a natural key (uuid5), so the key can be looked up by `_id`."""
    return uuid.uuid5(_NAMESPACE, "\x00".join(parts)).hex


def message_id_for(stream_id: str, dedup_key: str) -> str:
    return keyed_id("message", stream_id, dedup_key)


async def find_owned(
    collection, document_id: str, account_id: str, projection: dict[str, Any] | None = None
) -> dict[str, Any] | None:
    """The document with this `_id` if it belongs to `account_id`, else None.

    The filter is `_id` alone and ownership is checked here: FerretDB v1 hands only a bare `_id` equality to
    SQLite and evaluates any other condition in Go after decoding every document (about 4x slower measured)."""
    doc = await collection.find_one({"_id": document_id}, projection)
    if doc is None or doc.get("account_id") != account_id:
        return None
    return doc


def attachment_id(message_id: str, index: int) -> str:
    """Attachments are served by an id that names their message, so a download is one `_id` lookup."""
    return f"{message_id}-{index}"


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
    ]
}


async def insert(db: AsyncDatabase, doc: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """Store a message unless one with its (stream_id, dedup_key) exists: (stored, created)."""
    assert doc["_id"] == message_id_for(doc["stream_id"], doc["dedup_key"]), "message _id must come from its key"
    return await insert_once(db[COLLECTION], doc, {"_id": doc["_id"]})


async def find_by_dedup_key(db: AsyncDatabase, stream_id: str, dedup_key: str) -> dict[str, Any] | None:
    return await db[COLLECTION].find_one({"_id": message_id_for(stream_id, dedup_key)})


async def conversation_of(db: AsyncDatabase, stream_id: str, message_id_header: str) -> str | None:
    """The conversation holding the stream's message with this Message-ID (inbound or our reply), if any."""
    doc = await db[COLLECTION].find_one({"_id": message_id_for(stream_id, message_id_header)}, {"conversation_id": 1})
    return doc["conversation_id"] if doc else None


async def get(db: AsyncDatabase, account_id: str, message_id: str) -> dict[str, Any] | None:
    return await find_owned(db[COLLECTION], message_id, account_id, PUBLIC_PROJECTION)


async def get_internal(db: AsyncDatabase, message_id: str) -> dict[str, Any] | None:
    return await db[COLLECTION].find_one({"_id": message_id})


async def find_attachment(db: AsyncDatabase, account_id: str, attachment: str) -> dict[str, Any] | None:
    """The attachment record (from its message) of this account, or None."""
    message_id, _, _index = attachment.rpartition("-")
    if not message_id:
        return None
    doc = await find_owned(db[COLLECTION], message_id, account_id, {"attachments": 1, "account_id": 1})
    if doc is None:
        return None
    return next((a for a in doc.get("attachments", []) if a.get("id") == attachment), None)


async def thread_headers_of(db: AsyncDatabase, message_id: str | None) -> dict[str, Any] | None:
    """Message-ID and References of one message (the last inbound one, when a reply is built)."""
    if not message_id:
        return None
    return await db[COLLECTION].find_one({"_id": message_id}, {"message_id_header": 1, "references": 1})


async def list_page(
    db: AsyncDatabase, account_id: str, message_ids: list[str], *, limit: int, after: dict[str, Any] | None
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """One page of a conversation's messages in the order they were stored (its `message_ids`), oldest first.

    Fetched one `_id` at a time, concurrently: a `$in` or a `conversation_id` filter would make FerretDB v1
    decode every message of every account in Go; a bare `_id` equality is handed to SQLite."""
    start = int((after or {}).get("position", 0))
    page_ids = message_ids[start : start + limit]
    projection = {**PUBLIC_PROJECTION, "headers": 0}
    found = await asyncio.gather(*(find_owned(db[COLLECTION], mid, account_id, projection) for mid in page_ids))
    docs = [d for d in found if d is not None]
    more = start + limit < len(message_ids)
    return docs, ({"position": start + limit} if more else None)


async def claim_publication(db: AsyncDatabase, message_id: str, lease_seconds: float) -> bool:
    """Take the right to publish this message's follow-up event for `lease_seconds`; False if another worker
    holds it (two copies of one mail handled at once). A holder that crashed loses the lease when it runs out, so
    a later redelivery can still publish.

    The claim is the insert of a document with a derived `_id`: a unique-key insert is atomic on MongoDB and on
    FerretDB v1, where a conditional update is not (two concurrent updates can both match its filter)."""
    claims = db[CLAIMS]
    claim = {"_id": keyed_id("publish", message_id), "message_id": message_id, "claimed_at": utcnow()}
    for _ in range(2):
        try:
            await claims.insert_one(dict(claim))
        except DuplicateKeyError:
            held = await claims.find_one({"_id": claim["_id"]})
            if held is not None and held["claimed_at"] > utcnow() - timedelta(seconds=lease_seconds):
                return False
            await claims.delete_one({"_id": claim["_id"]})  # an expired lease: its holder died
            continue
        # Claimed; but the previous holder may have published and released in between.
        current = await db[COLLECTION].find_one({"_id": message_id}, {"published": 1})
        if current is not None and current.get("published"):
            await release_publication(db, message_id)
            return False
        return True
    return False


async def release_publication(db: AsyncDatabase, message_id: str) -> None:
    await db[CLAIMS].delete_one({"_id": keyed_id("publish", message_id)})


async def mark_published(db: AsyncDatabase, message_id: str) -> None:
    await db[COLLECTION].update_one({"_id": message_id}, {"$set": {"published": True}, "$unset": {"pending_event": ""}})
    await release_publication(db, message_id)


async def mark_failed_to_queue(db: AsyncDatabase, message_id: str, detail: str) -> None:
    await db[COLLECTION].update_one(
        {"_id": message_id, "delivery.status": "queued"},
        {"$set": {"delivery.status": "failed", "delivery.detail": detail}},
    )


DELIVERY_CLAIMS = "delivery_claims"  # who writes a message's next delivery version (see claim_delivery)


def delivery_claim_id(message_id: str, version: int) -> str:
    return f"{message_id}:{version}"


async def claim_delivery(db: AsyncDatabase, claim: dict[str, Any]) -> bool:
    """Take the right to write delivery version `claim["version"]` of a message; False if another report has it.

    A unique `_id` insert is the only write FerretDB v1 makes atomic (a compare-and-set update is read-filter-write
    there: two can both match). The claim records the change itself, so a worker may finish it for a dead holder.
    """
    assert claim["_id"] == delivery_claim_id(claim["message_id"], claim["version"])
    try:
        await db[DELIVERY_CLAIMS].insert_one(claim)
    except DuplicateKeyError:
        return False
    return True


async def get_delivery_claim(db: AsyncDatabase, message_id: str, version: int) -> dict[str, Any] | None:
    return await db[DELIVERY_CLAIMS].find_one({"_id": delivery_claim_id(message_id, version)})


async def release_delivery_claim(db: AsyncDatabase, claim_id: str) -> None:
    await db[DELIVERY_CLAIMS].delete_one({"_id": claim_id})


async def write_delivery(
    db: AsyncDatabase, message_id: str, previous_version: int, delivery: dict[str, Any], raw_blob_id: str | None
) -> dict[str, Any] | None:
    """Store a claimed delivery version over `previous_version`; the document after, or None if it was not there.

    Only the holder of the version's claim calls this, so the version filter is not what keeps writers apart (it
    cannot on FerretDB v1); it keeps a claim that was finished already from being written twice."""
    change: dict[str, Any] = {"delivery": delivery}
    if raw_blob_id is not None:
        change["raw_blob_id"] = raw_blob_id
    # Version 0 is also a message without a delivery (or its version) yet, as the consumer reads it.
    expected = {"$in": [0, None]} if previous_version == 0 else previous_version
    return await db[COLLECTION].find_one_and_update(
        {"_id": message_id, "delivery.version": expected},
        {"$set": change},
        return_document=ReturnDocument.AFTER,
    )


async def mark_rule_applied(db: AsyncDatabase, message_id: str, rule_id: str) -> None:
    await db[COLLECTION].update_one({"_id": message_id}, {"$addToSet": {"applied_rules": rule_id}})
