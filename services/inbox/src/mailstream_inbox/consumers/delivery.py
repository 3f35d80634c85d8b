"""`inbox.delivery`: apply sender's delivery reports to outbound messages; announce status changes.

Reports can arrive late, twice, or out of order (a retry's "deferred" after the final "sent"; a bounce days after
"sent"), so the delivery status only moves forward: queued -> sent -> failed (a bounce turns a sent message into
failed; nothing turns failed back). A "deferred" keeps the message queued and only updates the detail, and only
for an attempt at least as recent as the one recorded. Each change is a compare-and-set on `delivery.version`.
`MessageDeliveryChanged` is published when the status changed; a `delivery_event_pending` flag set in the same
write and cleared after the broker's confirm makes a crash in between publish on redelivery.
"""

import logging
from datetime import datetime
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from mailstream_common.broker import Broker, Delivery
from mailstream_common.contracts import DeliveryReported, MessageDeliveryChanged, utcnow

from ..repositories import blobs as blobs_repo
from ..repositories import messages as messages_repo

log = logging.getLogger(__name__)

RANK = {"queued": 0, "sent": 1, "failed": 2}
REPORTED_STATUS = {"sent": "sent", "deferred": "queued", "failed": "failed", "bounced": "failed"}
MAX_CAS_ATTEMPTS = 5


def next_delivery(current: dict[str, Any] | None, report: DeliveryReported, now: datetime) -> dict[str, Any] | None:
    """The message's new `delivery` after `report`, or None when the report changes nothing (stale/duplicate)."""
    current = current or {"status": "queued", "detail": "", "attempt": 0, "version": 0}
    status = REPORTED_STATUS[report.status]
    current_status = current.get("status", "queued")
    if RANK[status] < RANK[current_status]:
        return None
    stale_deferral = report.attempt < current.get("attempt", 0) or report.detail == current.get("detail")
    if status == current_status and (status != "queued" or stale_deferral):
        return None
    detail = report.detail
    if report.status == "bounced":
        detail = f"bounced: {report.detail}" if report.detail else "bounced"
    return {
        "status": status,
        "detail": detail,
        "reported": report.status,
        "permanent": report.permanent,
        "smtp_code": report.smtp_code,
        "recipient": report.recipient,
        "relay_queue_id": report.relay_queue_id,
        "attempt": max(report.attempt, current.get("attempt", 0)),
        "updated_at": now,
        "version": current.get("version", 0) + 1,
    }


def changed_event(message: dict[str, Any], correlation_id: str | None) -> MessageDeliveryChanged:
    delivery = message["delivery"]
    return MessageDeliveryChanged(
        account_id=message["account_id"],
        conversation_id=message.get("conversation_id"),
        message_id=message["_id"],
        status=delivery["status"],
        detail=delivery.get("detail", ""),
        correlation_id=correlation_id,
    )


async def apply_report(db: AsyncDatabase, broker: Broker, report: DeliveryReported) -> dict[str, Any] | None:
    message = await messages_repo.get_internal(db, report.message_id)
    if message is None or message.get("direction") != "outbound":
        log.info("delivery report for an unknown message ignored", extra={"message_id": report.message_id})
        return None
    if report.account_id is not None and report.account_id != message["account_id"]:
        log.warning("delivery report names another account; ignored", extra={"message_id": report.message_id})
        return None
    if report.raw is not None:
        sha256 = await blobs_repo.put(db, report.raw)
        await messages_repo.set_raw_blob(db, message["_id"], sha256, overwrite=report.status == "sent")

    for _ in range(MAX_CAS_ATTEMPTS):
        delivery = next_delivery(message.get("delivery"), report, utcnow())
        if delivery is None:
            break
        status_changed = delivery["status"] != (message.get("delivery") or {}).get("status")
        version = (message.get("delivery") or {}).get("version", 0)
        updated = await messages_repo.compare_and_set_delivery(
            db, message["_id"], version, delivery, event_pending=status_changed
        )
        if updated is not None:
            message = updated
            break
        message = await messages_repo.get_internal(db, report.message_id)  # lost a race: look again
        if message is None:
            return None
    if message.get("delivery_event_pending"):
        await broker.publish(changed_event(message, report.correlation_id))
        await messages_repo.clear_delivery_event(db, message["_id"])
    return message


def make_handler(db: AsyncDatabase, broker: Broker):
    async def handle(report: DeliveryReported, delivery: Delivery) -> None:
        await apply_report(db, broker, report)

    return handle
