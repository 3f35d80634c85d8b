"""Email streams: a customer-facing address, its unique forwarding address, and the state of its set-up.

Inbox is the only reader and writer of `streams`; other services keep projections of it fed by `stream.changed`
(`mailstream_inbox.catalogue`). Deleting is soft (`deleted: true`) so that a forwarding address is never handed out
again, old messages keep their stream, and the deletion can be republished to a projection that missed it.

A stream document:
    _id, account_id, topic_id, address (lower-case), display_name, allow_agent_send, forwarding_address
    (lower-case, unique), status ("awaiting_mail" -> "receiving"), deleted, created_at, updated_at, deleted_at,
    first_mail_at,
    provider_confirmation: null | {provider, code, link, requested_by, received_at}   (set by the store consumer)
    forwarding_check_token: null | str  (pending check), forwarding_check_requested_at,
    forwarding_verified: bool, forwarding_verified_at, forwarding_method ("redirect"|"forward_inline"|
    "forward_attached"|"direct"),
    template: null | {"html", "text"}   (per-stream override of the account email template, the brand),
    signature: null | str               (per-stream signature text, added below the reply content)
    revision: int                       (+1 by every write that changes what `stream.changed` carries)
    publish_pending: "created"|"updated"|"deleted"  (set with the revision, unset once that revision is published)
"""

import base64
import secrets
import uuid
from typing import Any

from pymongo import ASCENDING, IndexModel, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from mailstream_common.contracts import utcnow

from .pages import keyset_page

STREAMS = "streams"

FORWARDING_METHODS = ("redirect", "forward_inline", "forward_attached", "direct")

INDEXES = {
    STREAMS: [
        IndexModel([("forwarding_address", ASCENDING)], unique=True, name="streams_forwarding_address"),
        IndexModel(
            [("account_id", ASCENDING), ("deleted", ASCENDING), ("created_at", ASCENDING), ("_id", ASCENDING)],
            name="streams_list",
        ),
        IndexModel([("account_id", ASCENDING), ("topic_id", ASCENDING), ("deleted", ASCENDING)], name="streams_topic"),
        IndexModel([("account_id", ASCENDING), ("address", ASCENDING)], name="streams_address"),
        IndexModel(
            [("publish_pending", ASCENDING)],
            name="streams_publish_pending",
            partialFilterExpression={"publish_pending": {"$exists": True}},
        ),
    ]
}


def new_forwarding_address(inbound_domain: str) -> str:
    """`s-<26 base32 chars of 128 random bits>@<inbound domain>`: unguessable, case-insensitive, RCPT-safe."""
    token = base64.b32encode(secrets.token_bytes(16)).decode("ascii").rstrip("=").lower()
    return f"s-{token}@{inbound_domain.lower()}"


async def create_stream(
    db: AsyncDatabase,
    *,
    account_id: str,
    topic_id: str,
    address: str,
    allow_agent_send: bool,
    display_name: str,
    inbound_domain: str,
) -> dict[str, Any]:
    now = utcnow()
    doc: dict[str, Any] = {
        "_id": uuid.uuid4().hex,
        "account_id": account_id,
        "topic_id": topic_id,
        "address": address.lower(),
        "display_name": display_name,
        "allow_agent_send": allow_agent_send,
        "forwarding_address": new_forwarding_address(inbound_domain),
        "status": "awaiting_mail",
        "deleted": False,
        "created_at": now,
        "updated_at": now,
        "deleted_at": None,
        "first_mail_at": None,
        "provider_confirmation": None,
        "forwarding_check_token": None,
        "forwarding_check_requested_at": None,
        "forwarding_verified": False,
        "forwarding_verified_at": None,
        "forwarding_method": None,
        "template": None,
        "signature": None,
        "revision": 1,
        "publish_pending": "created",
    }
    await db[STREAMS].insert_one(doc)
    return doc


async def get_stream(db: AsyncDatabase, account_id: str, stream_id: str) -> dict[str, Any] | None:
    """The live stream of this account; None for a deleted stream or another account's id."""
    return await db[STREAMS].find_one({"_id": stream_id, "account_id": account_id, "deleted": False})


async def find_live_stream_with_address(
    db: AsyncDatabase, account_id: str, address: str, *, excluding: str | None = None
) -> dict[str, Any] | None:
    query: dict[str, Any] = {"account_id": account_id, "address": address.lower(), "deleted": False}
    if excluding:
        query["_id"] = {"$ne": excluding}
    return await db[STREAMS].find_one(query)


async def list_streams(
    db: AsyncDatabase,
    account_id: str,
    *,
    topic_id: str | None = None,
    limit: int,
    after: dict[str, Any] | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    query: dict[str, Any] = {"account_id": account_id, "deleted": False}
    if topic_id:
        query["topic_id"] = topic_id
    return await keyset_page(db[STREAMS], query, limit=limit, after=after)


async def count_live_streams_of_topic(db: AsyncDatabase, account_id: str, topic_id: str) -> int:
    return await db[STREAMS].count_documents({"account_id": account_id, "topic_id": topic_id, "deleted": False})


async def update_stream(
    db: AsyncDatabase, account_id: str, stream_id: str, changes: dict[str, Any]
) -> dict[str, Any] | None:
    """Apply `changes` (already validated) to a live stream; returns the new document or None."""
    if "address" in changes:
        changes = {**changes, "address": changes["address"].lower()}
    await db[STREAMS].update_one(
        {"_id": stream_id, "account_id": account_id, "deleted": False},
        {"$set": {**changes, "updated_at": utcnow(), "publish_pending": "updated"}, "$inc": {"revision": 1}},
    )
    return await get_stream(db, account_id, stream_id)


async def delete_stream(db: AsyncDatabase, account_id: str, stream_id: str) -> dict[str, Any] | None:
    """Soft-delete; returns the deleted stream (for its `stream.changed`) or None if there was no live one."""
    now = utcnow()
    return await db[STREAMS].find_one_and_update(
        {"_id": stream_id, "account_id": account_id, "deleted": False},
        {
            "$set": {"deleted": True, "deleted_at": now, "updated_at": now, "publish_pending": "deleted"},
            "$inc": {"revision": 1},
        },
        return_document=ReturnDocument.AFTER,
    )


async def start_forwarding_check(db: AsyncDatabase, account_id: str, stream_id: str) -> str | None:
    """The token of the stream's pending forwarding check, creating one if none is pending.

    Asking twice before the mail came back reuses the pending token, so either test mail verifies the stream.
    """
    stream = await get_stream(db, account_id, stream_id)
    if stream is None:
        return None
    if stream.get("forwarding_check_token"):
        return stream["forwarding_check_token"]
    token = secrets.token_hex(16)
    await db[STREAMS].update_one(
        {"_id": stream_id, "account_id": account_id, "forwarding_check_token": None},
        {"$set": {"forwarding_check_token": token, "forwarding_check_requested_at": utcnow()}},
    )
    stream = await get_stream(db, account_id, stream_id)
    return stream.get("forwarding_check_token") if stream else None


# --- called by the store consumer when ingest's analysis says so ---


async def mark_receiving(db: AsyncDatabase, stream_id: str) -> None:
    """The first mail arrived: `awaiting_mail` -> `receiving` (idempotent)."""
    await db[STREAMS].update_one(
        {"_id": stream_id, "status": "awaiting_mail"},
        {
            # `status` travels in stream.changed: the catalogue relay publishes this revision.
            "$set": {
                "status": "receiving",
                "first_mail_at": utcnow(),
                "updated_at": utcnow(),
                "publish_pending": "updated",
            },
            "$inc": {"revision": 1},
        },
    )


async def record_provider_confirmation(db: AsyncDatabase, stream_id: str, confirmation: dict[str, Any]) -> None:
    """A provider's 'confirm forwarding' mail arrived: keep its code/link so the admin can finish set-up."""
    await db[STREAMS].update_one(
        {"_id": stream_id},
        {"$set": {"provider_confirmation": {**confirmation, "received_at": utcnow()}, "updated_at": utcnow()}},
    )


async def mark_forwarding_verified(db: AsyncDatabase, stream_id: str, token: str, method: str) -> bool:
    """Our forwarding-check mail came back through the customer's rule; True if `token` was the pending one.

    `method` says how it arrived ("redirect", "forward_inline", "forward_attached" or "direct"), which tells the
    admin whether an Outlook rule forwards (losing the customer's address) instead of redirecting.
    Idempotent: a redelivery of the same mail finds the token already consumed and still answers True.
    """
    if method not in FORWARDING_METHODS:
        method = "direct"
    now = utcnow()
    result = await db[STREAMS].update_one(
        {"_id": stream_id, "forwarding_check_token": token},
        {
            "$set": {
                "forwarding_check_token": None,
                "forwarding_verified": True,
                "forwarding_verified_at": now,
                "forwarding_method": method,
                "forwarding_verified_token": token,
                "updated_at": now,
            }
        },
    )
    if result.modified_count == 1:
        return True
    return await db[STREAMS].count_documents({"_id": stream_id, "forwarding_verified_token": token}) > 0
