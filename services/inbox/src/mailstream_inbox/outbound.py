"""Send a built reply: store the outbound message as 'queued', make its Message-ID a thread key, ask sender.

Shared by the replies route (agents) and the actions consumer (automation's auto_reply). Outbox pattern: the
`ReplyRequested` is stored on the message (`pending_event`) before it is published and removed once the broker
confirmed it (`published`; the message's publication lease keeps two handlers from both publishing it), so a
redelivered auto_reply command publishes exactly the same request (same ids) again instead of building a second
one, and sender's idempotency on `message_id` does the rest.
"""

import logging
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from mailstream_common.broker import Broker
from mailstream_common.contracts import Address, EmailTemplate, MessageStored, ReplyRequested

from .publication import publish_once
from .replies import DEFAULT_TEMPLATE, OutboundReply, ReplyContext
from .repositories import conversations as conversations_repo
from .repositories import messages as messages_repo
from .repositories import templates as templates_repo

log = logging.getLogger(__name__)


async def store_outbound(db: AsyncDatabase, reply: OutboundReply) -> tuple[dict[str, Any], bool]:
    """Store the message once (by its dedup key) and fold it into its conversation; (stored, created)."""
    document = {**reply.message, "pending_event": reply.event.model_dump(mode="json", by_alias=True)}
    stored, created = await messages_repo.insert(db, document)
    await fold_into_conversation(db, stored)
    return stored, created


async def fold_into_conversation(db: AsyncDatabase, stored: dict[str, Any]) -> None:
    """Count the message, move last activity, and make its Message-ID a thread key (idempotent)."""
    await conversations_repo.record_message(
        db,
        stored["conversation_id"],
        message_id=stored["_id"],
        message_at=stored["created_at"],
        terms=[],
        inbound=False,
    )


async def publish_pending(db: AsyncDatabase, broker: Broker, stored: dict[str, Any]) -> bool:
    """Publish the stored `ReplyRequested` unless that was already confirmed; True if it was published now."""
    if stored.get("published") or not stored.get("pending_event"):
        return False
    event = ReplyRequested.model_validate(stored["pending_event"])
    if not await publish_once(db, broker, stored["_id"], event):
        return False
    log.info(
        "reply requested",
        extra={"message_id": stored["_id"], "conversation_id": stored["conversation_id"], "kind": event.kind},
    )
    return True


async def send(db: AsyncDatabase, broker: Broker, reply: OutboundReply) -> tuple[dict[str, Any], bool]:
    stored, created = await store_outbound(db, reply)
    await publish_pending(db, broker, stored)
    return stored, created


async def effective_template(db: AsyncDatabase, account_id: str, stream: dict[str, Any]) -> EmailTemplate:
    """The stream's own template (a brand) if it has one, else the account's, else the built-in default."""
    override = stream.get("template")
    if override and override.get("html") and override.get("text"):
        return EmailTemplate(html=override["html"], text=override["text"])
    doc = await templates_repo.get(db, account_id)
    if doc is not None:
        return EmailTemplate(html=doc["html"], text=doc["text"])
    return DEFAULT_TEMPLATE


async def reply_context(
    db: AsyncDatabase,
    conversation: dict[str, Any],
    stream: dict[str, Any],
    *,
    agent_name: str,
    cc: list[Address] | None = None,
) -> ReplyContext:
    last = await messages_repo.thread_headers_of(db, conversation.get("last_inbound_message_id"))
    customer = conversation.get("customer") or {}
    return ReplyContext(
        account_id=conversation["account_id"],
        conversation_id=conversation["_id"],
        conversation_subject=conversation.get("subject", ""),
        customer=Address(name=customer.get("name", ""), address=customer.get("address", "")),
        stream_id=stream["_id"],
        stream_address=stream["address"],
        stream_display_name=stream.get("display_name", ""),
        agent_name=agent_name,
        last_inbound_message_id=last.get("message_id_header") if last else None,
        last_inbound_references=(last.get("references") or []) if last else [],
        cc=cc or [],
    )


def outbound_stored_event(stored: dict[str, Any], topic_id: str) -> MessageStored:
    """`MessageStored` for an outbound message: live updates show it; automation ignores outbound messages."""
    return MessageStored(
        account_id=stored["account_id"],
        topic_id=topic_id,
        stream_id=stored["stream_id"],
        conversation_id=stored["conversation_id"],
        message_id=stored["_id"],
        direction="outbound",
        is_first_message=False,
        from_=Address.model_validate(stored["from"]),
        to=[Address.model_validate(a) for a in stored.get("to", [])],
        cc=[Address.model_validate(a) for a in stored.get("cc", [])],
        subject=stored.get("subject", ""),
        text=(stored.get("text") or "")[:16_000],
        received_at=stored["created_at"],
    )


async def announce(broker: Broker, stored: dict[str, Any], topic_id: str) -> None:
    """Best effort: the reply is queued either way; a lost live update is fixed by the client's next fetch."""
    try:
        await broker.publish(outbound_stored_event(stored, topic_id))
    except Exception:
        log.warning("could not announce the outbound message", extra={"message_id": stored["_id"]}, exc_info=True)
