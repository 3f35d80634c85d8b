"""Scheduled send: a reply with `send_at` is built and stored at once, but held (`schedule.state` 'held') instead
of publishing its `ReplyRequested`; it is listed, and cancellable until it leaves.

The wake-up is a `ScheduledReplyDue` on the broker's delay ladder (`mailstream_common.delays`), so it survives
restarts of every service. At its time the held reply leaves exactly once: the transition held -> sending is one
conditional update (`begin_sending`), only the worker that made it (or a redelivery finding 'sending' after a crash)
publishes, and the publish itself is the outbox's (once per message, `outbox.publish_pending_reply`). A cancel is
one conditional delete of a still-held reply, so a cancel and the send can never both happen.
"""

import logging
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from mailstream_common import topology
from mailstream_common.broker import Broker
from mailstream_common.contracts import ScheduledReplyDue, utcnow

from .. import conversation_time as rules
from ..repositories import conversation_changes as changes_repo
from ..repositories import messages as messages_repo
from ..repositories import streams as streams_repo
from .timeline_notes import note

log = logging.getLogger(__name__)


def due_event(stored: dict[str, Any]) -> ScheduledReplyDue:
    schedule = stored["schedule"]
    return ScheduledReplyDue(
        account_id=stored["account_id"],
        conversation_id=stored["conversation_id"],
        message_id=stored["_id"],
        schedule_token=schedule["token"],
        due_at=schedule["send_at"],
    )


async def arm(db: AsyncDatabase, broker: Broker, stored: dict[str, Any], actor: str) -> None:
    """Put the held reply's wake-up on the ladder; if the broker refuses, the reply is withdrawn (and the error
    goes to the caller): a held reply without a wake-up would never leave."""
    schedule = stored["schedule"]
    try:
        await broker.publish_delayed(
            due_event(stored), topology.INBOX_TIMERS, rules.seconds_until(schedule["send_at"], utcnow())
        )
    except Exception:
        await withdraw(db, stored["_id"], token=schedule["token"])
        raise
    await note(
        db,
        broker,
        account_id=stored["account_id"],
        conversation_id=stored["conversation_id"],
        kind="reply_scheduled",
        operation_key=stored["_id"],
        actor=actor,
        details={"message_id": stored["_id"], "send_at": schedule["send_at"].isoformat()},
    )


async def withdraw(
    db: AsyncDatabase, message_id: str, *, account_id: str | None = None, token: str | None = None
) -> dict[str, Any] | None:
    """Remove a still-held reply and uncount it from its conversation; the removed document, or None."""
    taken = await changes_repo.take_held(db, message_id, account_id=account_id, token=token)
    if taken is not None:
        await changes_repo.unfold_message(db, taken["conversation_id"], message_id)
        await changes_repo.refresh_latest(db, taken["conversation_id"])
    return taken


async def cancel(db: AsyncDatabase, broker: Broker, account_id: str, message_id: str, actor: str) -> dict[str, Any]:
    """Cancel a held reply; raises LookupError when there is none, ValueError when it has left already."""
    taken = await withdraw(db, message_id, account_id=account_id)
    if taken is None:
        raise LookupError(message_id)
    await note(
        db,
        broker,
        account_id=account_id,
        conversation_id=taken["conversation_id"],
        kind="scheduled_reply_cancelled",
        operation_key=message_id,
        actor=actor,
        details={"message_id": message_id, "send_at": taken["schedule"]["send_at"].isoformat()},
    )
    return taken


async def send_due(db: AsyncDatabase, broker: Broker, event: ScheduledReplyDue) -> None:
    """The wake-up arrived at its time: send the held reply once (idempotent under redelivery)."""
    from .send_reply import finish  # send_reply arms schedules through this module

    stored = await changes_repo.begin_sending(db, event.message_id, event.schedule_token)
    if stored is None:
        log.info("wake-up of a cancelled or sent reply ignored", extra={"message_id": event.message_id})
        return
    stream = await streams_repo.get_stream(db, stored["account_id"], stored["stream_id"])
    if stream is None:
        await messages_repo.mark_failed_to_queue(db, stored["_id"], "not sent: the stream was deleted before send_at")
        return
    await finish(db, broker, stored, stream["topic_id"])
    await changes_repo.finish_sending(db, stored["_id"], event.schedule_token)
    await note(
        db,
        broker,
        account_id=stored["account_id"],
        conversation_id=stored["conversation_id"],
        kind="scheduled_reply_sent",
        operation_key=stored["_id"],
        actor="system",
        details={"message_id": stored["_id"], "send_at": stored["schedule"]["send_at"].isoformat()},
    )
