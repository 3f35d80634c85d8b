"""The delivery timeline of an outbound message, from the sender's delivery reports: pure functions.

A report says how one attempt ended (or that a bounce came back); it becomes one or two timeline entries: the
attempt with the relay's reply, then what followed (deferred with the next attempt time, sent with the relay's
queue id, failed with its reason). A bounce is one entry with the parsed report. The message keeps the entries
(`delivery.timeline`); the `queued` entry that opens every timeline is the message's own creation.
"""

from datetime import datetime
from typing import Any

from mailstream_common.contracts import DeliveryReported
from mailstream_common.contracts.delivery import BounceFacts, DeliveryTimelineEntry

# Enough for every attempt the sender makes in its maximum age, and a few retries; older entries drop off first.
MAX_ENTRIES = 100


def attempts_in(timeline: list[dict[str, Any]]) -> int:
    return sum(1 for entry in timeline if entry.get("type") == "attempt")


def entries_of_report(report: DeliveryReported, previous_attempts: int, now: datetime) -> list[DeliveryTimelineEntry]:
    """The entries `report` adds to a timeline that has `previous_attempts` attempts already."""
    at = report.occurred_at or now
    round_ = report.retry_round
    if report.status == "bounced":
        bounce = BounceFacts(
            kind="hard" if report.permanent else "soft",
            status=report.dsn_status,
            smtp_code=report.smtp_code,
            diagnostic=report.detail,
            recipient=report.recipient,
        )
        return [DeliveryTimelineEntry(type="bounced", at=at, detail=report.detail, bounce=bounce, retry_round=round_)]

    entries = []
    if report.relay_reply is not None:  # the sender talked to (or tried to reach) the relay
        entries.append(
            DeliveryTimelineEntry(
                type="attempt",
                at=at,
                attempt=previous_attempts + 1,
                smtp_code=report.smtp_code,
                reply=report.relay_reply,
                retry_round=round_,
            )
        )
    if report.status == "sent":
        entries.append(
            DeliveryTimelineEntry(
                type="sent", at=at, relay_queue_id=report.relay_queue_id, detail=report.detail, retry_round=round_
            )
        )
    elif report.status == "deferred":
        entries.append(
            DeliveryTimelineEntry(
                type="deferred",
                at=at,
                next_attempt_at=report.next_attempt_at,
                detail=report.detail,
                retry_round=round_,
            )
        )
    else:
        entries.append(
            DeliveryTimelineEntry(
                type="failed", at=at, reason=report.failure_reason, detail=report.detail, retry_round=round_
            )
        )
    return entries


def retried_entry(now: datetime, retry_round: int, requested_by: str) -> DeliveryTimelineEntry:
    return DeliveryTimelineEntry(
        type="retried", at=now, detail=f"retry requested by {requested_by}", retry_round=retry_round
    )


def stored(entries: list[DeliveryTimelineEntry]) -> list[dict[str, Any]]:
    """Entries as the message document keeps them (datetimes stay datetimes)."""
    return [entry.model_dump(exclude_defaults=True) | {"type": entry.type, "at": entry.at} for entry in entries]


def extended(timeline: list[dict[str, Any]], entries: list[DeliveryTimelineEntry]) -> list[dict[str, Any]]:
    return [*timeline, *stored(entries)][-MAX_ENTRIES:]


def timeline_of(message: dict[str, Any]) -> list[DeliveryTimelineEntry]:
    """The whole timeline of an outbound message, `queued` first."""
    delivery = message.get("delivery") or {}
    queued = DeliveryTimelineEntry(type="queued", at=message["created_at"])
    return [queued, *(DeliveryTimelineEntry.model_validate(entry) for entry in delivery.get("timeline") or [])]
