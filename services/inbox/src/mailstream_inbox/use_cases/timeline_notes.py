"""Record a timeline entry and announce it to live clients (`conversation.timeline_recorded`).

The announcement's event id is the entry's id, so a repeated operation that finds its entry recorded announces it
again under the same id, and the gateway's journal keeps it once."""

import logging
from datetime import datetime
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from mailstream_common.broker import Broker
from mailstream_common.contracts import ConversationTimelineRecorded, utcnow

from ..repositories import timeline as timeline_repo

log = logging.getLogger(__name__)


async def note(
    db: AsyncDatabase,
    broker: Broker,
    *,
    account_id: str,
    conversation_id: str,
    kind: str,
    operation_key: str,
    actor: str,
    details: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> dict[str, Any]:
    entry, _created = await timeline_repo.record(
        db,
        account_id=account_id,
        conversation_id=conversation_id,
        kind=kind,
        operation_key=operation_key,
        at=at or utcnow(),
        actor=actor,
        details=details,
    )
    event = ConversationTimelineRecorded(
        event_id=entry["_id"],
        account_id=account_id,
        conversation_id=conversation_id,
        entry_id=entry["_id"],
        kind=entry["kind"],
        at=entry["at"],
        actor=entry["actor"],
        details=entry.get("details") or {},
    )
    try:  # best effort, like every live update: the timeline itself is the record
        await broker.publish(event)
    except Exception:
        log.warning("could not announce a timeline entry", extra={"conversation_id": conversation_id}, exc_info=True)
    return entry
