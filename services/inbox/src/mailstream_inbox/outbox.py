"""Publish a stored message's follow-up event once (outbox): under the message's publication lease.

The event is stored on the message before it is published and the message is marked `published` once the broker
confirmed it, so a crash in between publishes on redelivery and a duplicate never publishes twice. Two copies of one
mail (or of one auto-reply command) handled at the same moment both find the message unpublished; the lease
(`messages.claim_publication`) lets one publish. The other waits a moment for it, since a confirmed publish takes
milliseconds, and is retried through the broker only if the holder takes longer (it may have died: its lease runs
out after `LEASE_SECONDS`).
"""

import asyncio
import logging
import uuid
from datetime import timedelta
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from mailstream_common.broker import Broker, Retry
from mailstream_common.contracts import ReplyRequested, utcnow
from mailstream_common.contracts.base import Event

from .repositories import messages as messages_repo

log = logging.getLogger(__name__)

LEASE_SECONDS = 30.0
WAIT_SECONDS = 5.0
POLL_SECONDS = 0.01
POLL_MAX_SECONDS = 0.2


async def publish_once(db: AsyncDatabase, broker: Broker, message_id: str, event: Event) -> bool:
    """Publish `event` for the message unless that was confirmed already; True if this call published it."""
    owner = uuid.uuid4().hex
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_SECONDS
    pause = POLL_SECONDS
    while True:
        claim = await messages_repo.claim_publication(db, message_id, owner, LEASE_SECONDS)
        if claim == "published":
            return False
        if claim == "claimed":
            break
        if loop.time() + pause > deadline:
            raise Retry(f"another worker is publishing the event of message {message_id}", delay=LEASE_SECONDS)
        await asyncio.sleep(pause)
        pause = min(pause * 2, POLL_MAX_SECONDS)
    try:
        await broker.publish(event)
    except Exception:
        await messages_repo.release_publication(db, message_id, owner)
        raise
    try:
        await messages_repo.mark_published(db, message_id, owner)
    except PyMongoError:
        # The broker confirmed: the event is out, whatever happens to this write. Raising now would tell an API
        # caller "nothing will be sent, try again" for a reply that is queued (the fault suite saw the customer get
        # both). Unmarked, a repeat publishes it once more, which its consumers take idempotently (the sender sends
        # a reply once per message id); the lease runs out by itself.
        log.warning(
            "event published, but the database did not record it; a repeat would publish it again",
            extra={"message_id": message_id, "event": event.event_name},
        )
    return True


async def publish_pending_reply(db: AsyncDatabase, broker: Broker, stored: dict[str, Any]) -> bool:
    """Publish an outbound message's stored `ReplyRequested` unless that was already confirmed; True if now."""
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


async def relay_stranded_replies(
    db: AsyncDatabase, broker: Broker, *, older_than_seconds: float, limit: int = 200
) -> int:
    """Publish the requests of replies whose API request died between storing and publishing them (a crash, a kill
    -9 of the inbox); returns how many were published now.

    The caller got no answer for such a reply (or a 5xx it may retry with a new message), so it would otherwise
    stay 'queued' forever. `older_than_seconds` leaves the route its time to publish or to mark it failed; the
    publication lease keeps a relay of each replica and a late route from publishing it twice."""
    cutoff = utcnow() - timedelta(seconds=older_than_seconds)
    published = 0
    for stored in await messages_repo.stranded_replies(db, cutoff, limit):
        if await publish_pending_reply(db, broker, stored):
            published += 1
    if published:
        log.warning("published replies whose request died before publishing them", extra={"count": published})
    return published
