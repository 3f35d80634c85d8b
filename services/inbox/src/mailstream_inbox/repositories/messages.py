"""Messages of conversations, inbound and outbound. Inbox is the only writer.

A message document:
    _id, account_id, conversation_id, stream_id, direction inbound|outbound, kind (outbound: reply|auto_reply),
    from {name,address}, to [..], cc [..], subject, text, html (sanitised), remote_images_blocked,
    headers [{name, value}] (ordered, repeatable, names may contain dots: never a mapping),
    attachments [{id, filename, content_type, size, sha256, part_id, content_id, inline}],
    message_id_header, in_reply_to [..], references [..], authentication {spf,dkim,dmarc,header} | None,
    forwarded {method, by, original_from, ...} | None, customer {name,address},
    delivery {status queued|sent|failed, detail, updated_at, attempt, smtp_code, version, report_id} | None
    (outbound only; written by `write_delivery`, guarded by its version: consumers/delivery.py),
    delivery_announcement {version, report_id, owner, since, correlation_id} | absent: a delivery change whose
    `MessageDeliveryChanged` is not confirmed yet (the next version waits for it, so announcements keep order),
    raw_blob_id (sha256 in `blobs`), dedup_key, created_at, parse_warnings [..],
    published (the follow-up event was confirmed by the broker), publishing {owner, since} | absent (the lease of
    the worker publishing it, see `claim_publication`), pending_event (an outbound message's ReplyRequested, kept
    until the broker confirmed it so a redelivery can send exactly that again),
    applied_rules [rule ids whose actions ran for this message as trigger].

Idempotency key: (stream_id, dedup_key), a unique index; dedup_key is the Message-ID header, or
`sha256:<raw digest>` when the mail has none, or our Message-ID (auto-replies: `auto_reply:<rule>:<trigger>`) for
an outbound message. `_id` is derived from the key (a name-based UUID), so "is this mail stored already?" and
"which conversation holds the message with this Message-ID?" (threading by In-Reply-To/References) are primary-key
lookups that need no other index.
"""

import uuid
from datetime import datetime, timedelta
from typing import Any, Literal

from pymongo import ASCENDING, IndexModel, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from mailstream_common.contracts import utcnow
from mailstream_common.mongo import insert_once

from .pages import keyset_page

COLLECTION = "messages"
_NAMESPACE = uuid.UUID("6f1d3c2e-5b0a-4e8f-9a7b-2c4d6e8f0a1b")


def keyed_id(*parts: str) -> str:
    """A stable 32-hex id for a natural key (uuid5), so the key can be looked up by `_id`."""
    return uuid.uuid5(_NAMESPACE, "\x00".join(parts)).hex


def message_id_for(stream_id: str, dedup_key: str) -> str:
    return keyed_id("message", stream_id, dedup_key)


def attachment_id(message_id: str, index: int) -> str:
    """Attachments are served by an id that names their message, so a download is one `_id` lookup."""
    return f"{message_id}-{index}"


# Set with `pending_event` on a reply that is to be published now (not a held scheduled one), gone once the broker
# confirmed it: what the reply relay looks for.
PENDING_SINCE = "pending_since"
PUBLIC_PROJECTION = {"pending_event": 0, PENDING_SINCE: 0, "publishing": 0, "delivery_announcement": 0}
PAGE_PROJECTION = {**PUBLIC_PROJECTION, "headers": 0}

INDEXES = {
    COLLECTION: [
        IndexModel([("stream_id", ASCENDING), ("dedup_key", ASCENDING)], unique=True, name="messages_dedup"),
        IndexModel(
            [("conversation_id", ASCENDING), ("created_at", ASCENDING), ("_id", ASCENDING)],
            name="messages_by_conversation",
        ),
        # The reply relay's range read: only unconfirmed replies carry the field (a plain index: SecantusDB walks a
        # partial one).
        IndexModel([(PENDING_SINCE, ASCENDING)], name="messages_pending_reply"),
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
    return await db[COLLECTION].find_one({"_id": message_id, "account_id": account_id}, PUBLIC_PROJECTION)


async def get_internal(db: AsyncDatabase, message_id: str) -> dict[str, Any] | None:
    return await db[COLLECTION].find_one({"_id": message_id})


async def find_attachment(db: AsyncDatabase, account_id: str, attachment: str) -> dict[str, Any] | None:
    """The attachment record (from its message) of this account, or None."""
    message_id, _, _index = attachment.rpartition("-")
    if not message_id:
        return None
    doc = await db[COLLECTION].find_one({"_id": message_id, "account_id": account_id}, {"attachments": 1})
    if doc is None:
        return None
    return next((a for a in doc.get("attachments", []) if a.get("id") == attachment), None)


async def thread_headers_of(db: AsyncDatabase, message_id: str | None) -> dict[str, Any] | None:
    """Message-ID and References of one message (the last inbound one, when a reply is built)."""
    if not message_id:
        return None
    return await db[COLLECTION].find_one({"_id": message_id}, {"message_id_header": 1, "references": 1})


async def list_page(
    db: AsyncDatabase, account_id: str, conversation_id: str, *, limit: int, after: dict[str, Any] | None
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """One page of a conversation's messages, oldest first: one query on `messages_by_conversation`."""
    return await keyset_page(
        db[COLLECTION],
        {"conversation_id": conversation_id, "account_id": account_id},
        limit=limit,
        after=after,
        sort_field="created_at",
        projection=PAGE_PROJECTION,
    )


# --- publishing the follow-up event (outbox) ---

Publication = Literal["claimed", "published", "busy"]


def publication_claim_filter(message_id: str, lease_cutoff: datetime) -> dict[str, Any]:
    """The unpublished message with no lease, or a lease taken before `lease_cutoff` (it ran out).

    "No lease taken since the cutoff" is one `$not` on `publishing.since` (a missing or null lease has no `since`),
    not an `$or` of the two cases: SecantusDB answers an `_id` filter with a top-level `$or` by walking the whole
    collection, so every stored mail's claim cost grew with the inbox (issue 12, `bench/inbox_store_growth.py`).
    """
    return {"_id": message_id, "published": {"$ne": True}, "publishing.since": {"$not": {"$gte": lease_cutoff}}}


async def claim_publication(db: AsyncDatabase, message_id: str, owner: str, lease_seconds: float) -> Publication:
    """Take the lease to publish this message's follow-up event, as `owner`.

    "published" when that was confirmed already; "busy" while another worker's lease runs (two copies of one
    mail handled at once). The lease is needed because the publish is outside the database: without it both
    copies would publish. A holder that died loses it when it runs out, so a redelivery still publishes.
    """
    now = utcnow()
    claimed = await db[COLLECTION].update_one(
        publication_claim_filter(message_id, now - timedelta(seconds=lease_seconds)),
        {"$set": {"publishing": {"owner": owner, "since": now}}},
    )
    if claimed.modified_count:
        return "claimed"
    current = await db[COLLECTION].find_one({"_id": message_id}, {"published": 1})
    return "published" if current is None or current.get("published") else "busy"


async def mark_published(db: AsyncDatabase, message_id: str, owner: str) -> None:
    """Record the broker's confirm and drop the outbox copy; the lease goes too, but only if still `owner`'s."""
    done = {"$set": {"published": True}, "$unset": {"pending_event": "", PENDING_SINCE: ""}}
    released = await db[COLLECTION].update_one(
        {"_id": message_id, "publishing.owner": owner},
        {**done, "$unset": {"pending_event": "", PENDING_SINCE: "", "publishing": ""}},
    )
    if not released.matched_count:  # our lease ran out and another worker holds it now: leave it to that one
        await db[COLLECTION].update_one({"_id": message_id}, done)


async def release_publication(db: AsyncDatabase, message_id: str, owner: str) -> None:
    """Give the lease up after a failed publish (only `owner`'s own), so that a retry need not wait it out."""
    await db[COLLECTION].update_one({"_id": message_id, "publishing.owner": owner}, {"$unset": {"publishing": ""}})


async def stranded_replies(db: AsyncDatabase, older_than: datetime, limit: int) -> list[dict[str, Any]]:
    """Outbound messages still 'queued' with an unconfirmed ReplyRequested, stored before `older_than`: the
    request that stored them died before its publish (a held scheduled reply is waiting on purpose: not these)."""
    cursor = db[COLLECTION].find({PENDING_SINCE: {"$lt": older_than}}).sort(PENDING_SINCE, ASCENDING).limit(limit)
    return [
        doc
        async for doc in cursor
        if doc.get("pending_event") and (doc.get("delivery") or {}).get("status") == "queued"
    ]


async def mark_failed_to_queue(db: AsyncDatabase, message_id: str, detail: str) -> None:
    await db[COLLECTION].update_one(
        {"_id": message_id, "delivery.status": "queued"},
        {"$set": {"delivery.status": "failed", "delivery.detail": detail}, "$unset": {PENDING_SINCE: ""}},
    )


# --- delivery versions ---


async def write_delivery(
    db: AsyncDatabase,
    message_id: str,
    previous_version: int,
    delivery: dict[str, Any],
    raw_blob_id: str | None,
    announcement: dict[str, Any] | None,
) -> dict[str, Any] | None:
    """Store delivery version `previous_version + 1`; the document after, or None when another write got there first.

    The filter is the guard: the version read is still the current one, and no change is waiting to be announced.
    One atomic update, so of concurrent reports exactly one writes each version."""
    change: dict[str, Any] = {"delivery": delivery}
    if raw_blob_id is not None:
        change["raw_blob_id"] = raw_blob_id
    if announcement is not None:
        change["delivery_announcement"] = announcement
    # Version 0 is also a message without a delivery (or its version) yet, as the consumer reads it.
    expected = {"$in": [0, None]} if previous_version == 0 else previous_version
    return await db[COLLECTION].find_one_and_update(
        {"_id": message_id, "delivery.version": expected, "delivery_announcement": None},
        {"$set": change},
        return_document=ReturnDocument.AFTER,
    )


async def write_retry(
    db: AsyncDatabase,
    message_id: str,
    previous_version: int,
    delivery: dict[str, Any],
    announcement: dict[str, Any],
    request: dict[str, Any],
    now: datetime,
) -> dict[str, Any] | None:
    """A failed message's retry: delivery version `previous_version + 1` (queued again), its announcement, and the
    new request as the outbox copy, in one update guarded like `write_delivery` and by the failed status; the
    document after, or None when another write got there first."""
    return await db[COLLECTION].find_one_and_update(
        {
            "_id": message_id,
            "delivery.version": previous_version,
            "delivery.status": "failed",
            "delivery_announcement": None,
        },
        {
            "$set": {
                "delivery": delivery,
                "delivery_announcement": announcement,
                "pending_event": request,
                "published": False,
                PENDING_SINCE: now,
            },
            "$unset": {"publishing": ""},
        },
        return_document=ReturnDocument.AFTER,
    )


async def take_announcement(
    db: AsyncDatabase, message_id: str, previous_owner: str, owner: str, now: datetime
) -> dict[str, Any] | None:
    """Take over a pending announcement from `previous_owner` (dead, or this report before a crash); the document
    after, or None when someone else took it or it was released meanwhile."""
    return await db[COLLECTION].find_one_and_update(
        {"_id": message_id, "delivery_announcement.owner": previous_owner},
        {"$set": {"delivery_announcement.owner": owner, "delivery_announcement.since": now}},
        return_document=ReturnDocument.AFTER,
    )


async def release_announcement(db: AsyncDatabase, message_id: str, owner: str) -> None:
    """The announcement is confirmed: the next delivery version may be written. Only its owner releases it."""
    await db[COLLECTION].update_one(
        {"_id": message_id, "delivery_announcement.owner": owner}, {"$unset": {"delivery_announcement": ""}}
    )


async def mark_rule_applied(db: AsyncDatabase, message_id: str, rule_id: str) -> None:
    await db[COLLECTION].update_one({"_id": message_id}, {"$addToSet": {"applied_rules": rule_id}})


async def addresses_of(db: AsyncDatabase, message_id: str | None) -> dict[str, Any] | None:
    """From/To/Cc, customer and forward info of one message (what a reply-all is computed from)."""
    if not message_id:
        return None
    return await db[COLLECTION].find_one(
        {"_id": message_id}, {"from": 1, "to": 1, "cc": 1, "customer": 1, "forwarded": 1}
    )
