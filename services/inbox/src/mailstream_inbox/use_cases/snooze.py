"""Snooze: a conversation snoozed until a time leaves the open list (status 'snoozed') and reopens by itself then,
or at once when the customer writes.

The wake-up is a `SnoozeDue` on the broker's delay ladder (`mailstream_common.delays`), not a polling loop: it
survives restarts of every service. Each snooze has a token; a wake-up reopens the conversation only if it is
still snoozed under that token, so a cancelled, replaced or customer-ended snooze ignores its old wake-up.
"""

import logging
from datetime import datetime
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from mailstream_common import topology
from mailstream_common.broker import Broker
from mailstream_common.contracts import ConversationChanged, SnoozeDue, utcnow

from .. import conversation_time as rules
from ..repositories import conversation_changes as changes_repo
from .timeline_notes import note

log = logging.getLogger(__name__)


class SnoozeRefused(Exception):
    def __init__(self, refusal: rules.Refusal) -> None:
        super().__init__(refusal.reason)
        self.status = refusal.status
        self.reason = refusal.reason


async def snooze(
    db: AsyncDatabase, broker: Broker, conversation: dict[str, Any], until: datetime, actor: str
) -> dict[str, Any]:
    """Snooze until `until` (replacing any earlier snooze); the conversation after."""
    now = utcnow()
    refused = rules.snooze_refusal(conversation, until, now)
    if refused is not None:
        raise SnoozeRefused(refused)
    previous = conversation.get("status", "open")
    state = rules.new_snooze(until, now, previous if previous != "snoozed" else "open")
    doc = await changes_repo.start_snooze(db, conversation["account_id"], conversation["_id"], state)
    if doc is None:
        raise SnoozeRefused(rules.Refusal(404, "conversation not found"))
    wake = SnoozeDue(
        account_id=doc["account_id"], conversation_id=doc["_id"], snooze_token=state["token"], due_at=until
    )
    try:
        await broker.publish_delayed(wake, topology.INBOX_TIMERS, rules.seconds_until(until, now))
    except Exception:
        # Without its wake-up the snooze would last for ever: take it back (unless replaced meanwhile).
        await changes_repo.end_snooze(db, doc["_id"], {"snooze.token": state["token"]})
        raise
    await _announce(db, broker, doc, "snoozed", state["token"], actor, {"until": until.isoformat()})
    return doc


async def unsnooze(db: AsyncDatabase, broker: Broker, conversation: dict[str, Any], actor: str) -> dict[str, Any]:
    """Cancel the snooze (the conversation reopens now); its wake-up will find nothing to do."""
    token = (conversation.get("snooze") or {}).get("token")
    doc = await changes_repo.end_snooze(db, conversation["_id"], {"account_id": conversation["account_id"]})
    if doc is None:
        raise SnoozeRefused(rules.Refusal(409, "this conversation is not snoozed"))
    await _announce(db, broker, doc, "unsnoozed", token or "none", actor, {})
    return doc


async def wake_due(db: AsyncDatabase, broker: Broker, event: SnoozeDue) -> None:
    """The wake-up arrived at its time: reopen, if the snooze it belongs to is still on (idempotent)."""
    doc = await changes_repo.end_snooze(db, event.conversation_id, {"snooze.token": event.snooze_token})
    if doc is None:
        log.info("stale snooze wake-up ignored", extra={"conversation_id": event.conversation_id})
        return
    await _announce(db, broker, doc, "woke", event.snooze_token, "system", {"reason": "time"})


async def wake_for_customer(db: AsyncDatabase, broker: Broker, conversation_id: str, message_at: datetime) -> None:
    """A customer message newer than the snooze ends it at once (run before the message is counted)."""
    doc = await changes_repo.end_snooze(db, conversation_id, {"snooze.at": {"$lt": message_at}})
    if doc is None:
        return
    await _announce(db, broker, doc, "woke", f"customer:{message_at.isoformat()}", "customer", {"reason": "customer"})


async def _announce(
    db: AsyncDatabase,
    broker: Broker,
    doc: dict[str, Any],
    kind: str,
    operation_key: str,
    actor: str,
    details: dict[str, Any],
) -> None:
    await note(
        db,
        broker,
        account_id=doc["account_id"],
        conversation_id=doc["_id"],
        kind=kind,
        operation_key=operation_key,
        actor=actor,
        details=details,
    )
    try:
        changed_by = actor if actor.startswith("agent:") else "system"
        await broker.publish(
            ConversationChanged(
                account_id=doc["account_id"],
                conversation_id=doc["_id"],
                status=doc.get("status", "open"),
                tags=doc.get("tags", []),
                assignee=doc.get("assignee"),
                priority=doc.get("priority", "normal"),
                changed_by=changed_by,
            )
        )
    except Exception:
        log.warning("could not announce the status change", extra={"conversation_id": doc["_id"]}, exc_info=True)
