"""`inbox.delivery`: apply sender's delivery reports to outbound messages; announce status changes.

Reports can arrive late, twice, or out of order (a retry's "deferred" after the final "sent"; a bounce days after
"sent"), so the delivery status only moves forward: queued -> sent -> failed (a bounce turns a sent message into
failed; nothing turns failed back). A "deferred" keeps the message queued and only updates the detail, and only
for an attempt at least as recent as the one recorded. `next_delivery` decides that, purely.

Reports for one message can also be handled at the same time (prefetch > 1, several inbox workers). FerretDB v1
applies an update as read-filter-write without isolation, so a compare-and-set on `delivery.version` let two reports
both win (a bounce overwritten by a concurrent "sent", both announced) and even lost one of two updates of different
fields. So each change of a message's delivery is a version: the report that inserts the claim `<message>:<v+1>` in
`delivery_claims` (a unique `_id` insert is atomic on MongoDB and on FerretDB) alone writes version v+1, then
publishes `MessageDeliveryChanged` if the status changed, then deletes the claim. While a claim exists the next one
waits (polls, then is retried through the broker), so writes and announcements follow version order; the claim
records the whole change, so whoever finishes it writes the same thing:
- the same report redelivered after a crash (claim, then crash before the write or before the broker's confirm)
  finds its own claim and finishes it, so the change is still announced (the claim replaces the former
  `delivery_event_pending` flag, whose clearing was one more racing write); a repeat carries the same `event_id`;
- a claim older than `CLAIM_LEASE_SECONDS` belongs to a worker that died, and any report finishes it first.
Claims live only while a change is in flight, so `delivery_claims` stays a handful of documents (`_id` lookups
on FerretDB v1 scan their collection); one whose holder died and whose message never gets another report stays.
"""

import asyncio
import logging
from datetime import datetime, timedelta
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from mailstream_common.broker import Broker, Delivery, Retry
from mailstream_common.contracts import DeliveryReported, MessageDeliveryChanged, utcnow

from ..repositories import blobs as blobs_repo
from ..repositories import messages as messages_repo

log = logging.getLogger(__name__)

RANK = {"queued": 0, "sent": 1, "failed": 2}
REPORTED_STATUS = {"sent": "sent", "deferred": "queued", "failed": "failed", "bounced": "failed"}
INITIAL_DELIVERY = {"status": "queued", "detail": "", "attempt": 0, "version": 0}
# A claim's holder needs milliseconds (one write, one confirmed publish, one delete); one this old has died.
CLAIM_LEASE_SECONDS = 30.0
# How long a report waits for other reports' claims on the same message before it is retried via the broker.
CLAIM_WAIT_SECONDS = 20.0
CLAIM_POLL_SECONDS = 0.01
CLAIM_POLL_MAX_SECONDS = 0.2


def next_delivery(current: dict[str, Any] | None, report: DeliveryReported, now: datetime) -> dict[str, Any] | None:
    """The message's new `delivery` after `report`, or None when the report changes nothing (stale/duplicate)."""
    current = current or INITIAL_DELIVERY
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
        "report_id": report.event_id,
    }


def raw_blob_to_record(message: dict[str, Any], report: DeliveryReported, sha256: str | None) -> str | None:
    """The raw copy to record from this report, if any: what the relay accepted replaces what was there; the bytes
    of a failed attempt are kept only while there is nothing else (a bounce may be applied before its "sent")."""
    if sha256 is None or message.get("raw_blob_id") == sha256:
        return None
    if report.status == "sent" or not message.get("raw_blob_id"):
        return sha256
    return None


def planned_claim(
    message: dict[str, Any], report: DeliveryReported, sha256: str | None, now: datetime
) -> dict[str, Any] | None:
    """The claim (the next delivery version, recorded in full) that `report` makes of `message`, or None when the
    report changes nothing."""
    current = message.get("delivery") or INITIAL_DELIVERY
    raw_blob_id = raw_blob_to_record(message, report, sha256)
    delivery = next_delivery(current, report, now)
    if delivery is None and raw_blob_id is None:
        return None
    if delivery is None:  # only the raw copy changes; still a version, so that no other write overlaps it
        delivery = {**current, "version": current.get("version", 0) + 1, "report_id": report.event_id}
    version = delivery["version"]
    return {
        "_id": messages_repo.delivery_claim_id(message["_id"], version),
        "message_id": message["_id"],
        "version": version,
        "report_id": report.event_id,
        "claimed_at": now,
        "delivery": delivery,
        "raw_blob_id": raw_blob_id,
        "announce": delivery["status"] != current.get("status", "queued"),
        "correlation_id": report.correlation_id,
    }


def changed_event(message: dict[str, Any], claim: dict[str, Any]) -> MessageDeliveryChanged:
    """The announcement of a claimed change; its id is derived from the claim, so a repeat after a crash is
    recognisable as the same event."""
    delivery = claim["delivery"]
    return MessageDeliveryChanged(
        event_id=messages_repo.keyed_id("delivery_changed", claim["_id"], claim["report_id"]),
        account_id=message["account_id"],
        conversation_id=message.get("conversation_id"),
        message_id=message["_id"],
        status=delivery["status"],
        detail=delivery.get("detail", ""),
        correlation_id=claim.get("correlation_id"),
    )


def holds(message: dict[str, Any], claim: dict[str, Any]) -> bool:
    """Whether the message's delivery is the one this claim wrote."""
    delivery = message.get("delivery") or {}
    return delivery.get("version") == claim["version"] and delivery.get("report_id") == claim["report_id"]


def abandoned(claim: dict[str, Any], now: datetime) -> bool:
    return claim["claimed_at"] < now - timedelta(seconds=CLAIM_LEASE_SECONDS)


async def finish_claim(db: AsyncDatabase, broker: Broker, message: dict[str, Any], claim: dict[str, Any]) -> bool:
    """Write the claimed version (unless it is there already), announce it, release the claim. Idempotent.

    False when the claim was obsolete: made from a read that predates the version being finished and released by
    another report (common: a claim lives milliseconds). Nothing is written or announced then; its report must
    look again."""
    written = await messages_repo.write_delivery(
        db, message["_id"], claim["version"] - 1, claim["delivery"], claim.get("raw_blob_id")
    )
    current = written or await messages_repo.get_internal(db, message["_id"])
    real = current is not None and holds(current, claim)
    if real and claim["announce"]:
        await broker.publish(changed_event(current, claim))
    await messages_repo.release_delivery_claim(db, claim["_id"])
    return real


async def wait_released(db: AsyncDatabase, claim: dict[str, Any], deadline: float) -> None:
    """Wait until another report's claim is released; polls back off, so that waiters do not slow the holder."""
    pause = CLAIM_POLL_SECONDS
    while await messages_repo.get_delivery_claim(db, claim["message_id"], claim["version"]) is not None:
        if asyncio.get_running_loop().time() + pause > deadline:
            raise Retry(f"another report is changing the delivery of message {claim['message_id']}")
        await asyncio.sleep(pause)
        pause = min(pause * 2, CLAIM_POLL_MAX_SECONDS)


async def apply_report(db: AsyncDatabase, broker: Broker, report: DeliveryReported) -> None:
    message = await messages_repo.get_internal(db, report.message_id)
    if message is None or message.get("direction") != "outbound":
        log.info("delivery report for an unknown message ignored", extra={"message_id": report.message_id})
        return
    if report.account_id is not None and report.account_id != message["account_id"]:
        log.warning("delivery report names another account; ignored", extra={"message_id": report.message_id})
        return
    sha256 = None
    if report.raw is not None:
        sha256 = await blobs_repo.put(db, report.raw)
        message = await messages_repo.get_internal(db, report.message_id) or message  # storing took a while

    deadline = asyncio.get_running_loop().time() + CLAIM_WAIT_SECONDS
    while True:
        version = (message.get("delivery") or {}).get("version", 0)
        # Busy: version v+1 is being written, or version v (written) is being announced.
        busy = await messages_repo.get_delivery_claim(db, message["_id"], version + 1)
        if busy is None and version > 0:
            busy = await messages_repo.get_delivery_claim(db, message["_id"], version)
        if busy is None:
            claim = planned_claim(message, report, sha256, utcnow())
            if claim is None:
                return  # stale or duplicate
            if await messages_repo.claim_delivery(db, claim) and await finish_claim(db, broker, message, claim):
                return
        elif busy["report_id"] == report.event_id or abandoned(busy, utcnow()):
            await finish_claim(db, broker, message, busy)  # our own from before a crash, or a dead worker's
        else:
            await wait_released(db, busy, deadline)
        if asyncio.get_running_loop().time() > deadline:
            raise Retry(f"the delivery of message {message['_id']} kept changing under this report")
        message = await messages_repo.get_internal(db, report.message_id)  # look again
        if message is None:
            return


def make_handler(db: AsyncDatabase, broker: Broker):
    async def handle(report: DeliveryReported, delivery: Delivery) -> None:
        await apply_report(db, broker, report)

    return handle
