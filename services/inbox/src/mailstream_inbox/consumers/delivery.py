"""`inbox.delivery`: apply sender's delivery reports to outbound messages; announce status changes.

Reports can arrive late, twice, or out of order (a retry's "deferred" after the final "sent"; a bounce days after
"sent"), so the delivery status only moves forward: queued -> sent -> failed (a bounce turns a sent message into
failed; nothing turns failed back). A "deferred" keeps the message queued and only updates the detail, and only
for an attempt at least as recent as the one recorded. `next_delivery` decides that, purely, and adds the report's
entries to the delivery timeline (`delivery_timeline.py`). A retry through the API (`use_cases/retry_delivery.py`)
moves failed back to queued in a new round; reports of an earlier round change nothing after that.

Reports for one message can also be handled at the same time (prefetch > 1, several inbox workers). Each change of
a message's delivery is a version, written by one atomic update guarded by the version it was planned from
(`messages.write_delivery`): of concurrent reports exactly one writes each version; the others read the message
again and plan from what is there (a "sent" planned before a bounce was written changes nothing then).

A change of status, and a new deferral, is announced (`MessageDeliveryChanged`, with the timeline entries it
added) after it is written, once, and in version order. So the
write that changes the status also records `delivery_announcement` (the version, the report, an owner token and
since when), and no next version is written while it is there: its owner publishes, waits for the broker's confirm
and removes it (only its own token's). A lease, because the publish is outside the database (the inbox's other
one is the publication lease of `messages.claim_publication`). Other reports wait for it (polling, then retried through the broker); the same report redelivered after a
crash takes it over at once (its worker is gone), and any report takes over one older than `ANNOUNCE_LEASE_SECONDS`
(its worker died and its report may never come back). A repeat carries the same `event_id`.
"""

import asyncio
import logging
import uuid
from datetime import datetime, timedelta
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from mailstream_common.broker import Broker, Delivery, Retry
from mailstream_common.contracts import DeliveryReported, MessageDeliveryChanged, utcnow

from ..delivery_timeline import attempts_in, extended
from ..delivery_timeline import entries_of_report as timeline_entries
from ..repositories import blobs as blobs_repo
from ..repositories import messages as messages_repo

log = logging.getLogger(__name__)

RANK = {"queued": 0, "sent": 1, "failed": 2}
REPORTED_STATUS = {"sent": "sent", "deferred": "queued", "failed": "failed", "bounced": "failed"}
INITIAL_DELIVERY = {"status": "queued", "detail": "", "attempt": 0, "version": 0}
# An announcement's owner needs milliseconds (one confirmed publish, one update); one this old has died.
ANNOUNCE_LEASE_SECONDS = 30.0
# How long a report waits for another report's announcement before it is retried through the broker.
WAIT_SECONDS = 20.0
POLL_SECONDS = 0.01
POLL_MAX_SECONDS = 0.2


def next_delivery(current: dict[str, Any] | None, report: DeliveryReported, now: datetime) -> dict[str, Any] | None:
    """The message's new `delivery` after `report`, or None when the report changes nothing (stale/duplicate)."""
    current = current or INITIAL_DELIVERY
    status = REPORTED_STATUS[report.status]
    current_status = current.get("status", "queued")
    current_round = current.get("retry_round", 0)
    # A retry through the API starts a new round; the sender's reports of an earlier round are history. (A bounce
    # names no round: it comes from the remote side, about whichever copy was accepted.)
    if report.status != "bounced" and report.retry_round < current_round:
        return None
    if RANK[status] < RANK[current_status]:
        return None
    recorded_attempt = current.get("attempt", 0)
    stale_deferral = report.attempt < recorded_attempt or (
        report.attempt == recorded_attempt and report.detail == current.get("detail")
    )
    if status == current_status and (status != "queued" or stale_deferral):
        return None
    detail = report.detail
    if report.status == "bounced":
        detail = f"bounced: {report.detail}" if report.detail else "bounced"
    timeline = current.get("timeline") or []
    entries = timeline_entries(report, attempts_in(timeline), now)
    return {
        "status": status,
        "detail": detail,
        "timeline": extended(timeline, entries),
        "retry_round": current_round,
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


def planned_change(
    message: dict[str, Any], report: DeliveryReported, sha256: str | None, now: datetime, owner: str
) -> dict[str, Any] | None:
    """The next delivery version `report` makes of `message` (with the announcement `owner` will make, if the status
    changes), or None when the report changes nothing."""
    current = message.get("delivery") or INITIAL_DELIVERY
    raw_blob_id = raw_blob_to_record(message, report, sha256)
    delivery = next_delivery(current, report, now)
    if delivery is None and raw_blob_id is None:
        return None
    if delivery is None:  # only the raw copy changes; still a version, so that no other write overlaps it
        delivery = {**current, "version": current.get("version", 0) + 1, "report_id": report.event_id}
    announcement = None
    added = delivery.get("timeline", [])[len(current.get("timeline") or []) :]
    if delivery["status"] != current.get("status", "queued") or (report.status == "deferred" and added):
        announcement = {
            "version": delivery["version"],
            "report_id": report.event_id,
            "status": delivery["status"],
            "detail": delivery.get("detail", ""),
            "timeline": added,
            "correlation_id": report.correlation_id,
            "owner": owner,
            "since": now,
        }
    return {
        "version": delivery["version"],
        "delivery": delivery,
        "raw_blob_id": raw_blob_id,
        "announcement": announcement,
    }


def changed_event(message: dict[str, Any], announcement: dict[str, Any]) -> MessageDeliveryChanged:
    """The announcement of a change; its id is derived from the version and the report, so a repeat after a crash
    is recognisable as the same event."""
    version_id = f"{message['_id']}:{announcement['version']}"
    return MessageDeliveryChanged(
        event_id=messages_repo.keyed_id("delivery_changed", version_id, announcement["report_id"]),
        account_id=message["account_id"],
        conversation_id=message.get("conversation_id"),
        message_id=message["_id"],
        status=announcement["status"],
        detail=announcement["detail"],
        timeline=announcement.get("timeline") or [],
        correlation_id=announcement.get("correlation_id"),
    )


def may_take_over(announcement: dict[str, Any], report: DeliveryReported, now: datetime) -> bool:
    """Whether `report` finishes a pending announcement: its own from before a crash, or a dead worker's."""
    expired = announcement["since"] < now - timedelta(seconds=ANNOUNCE_LEASE_SECONDS)
    return announcement["report_id"] == report.event_id or expired


async def announce(db: AsyncDatabase, broker: Broker, message: dict[str, Any], owner: str) -> None:
    """Publish the message's pending announcement (`owner`'s) and, once confirmed, remove it."""
    await broker.publish(changed_event(message, message["delivery_announcement"]))
    await messages_repo.release_announcement(db, message["_id"], owner)


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

    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_SECONDS
    pause = POLL_SECONDS
    while True:
        owner = uuid.uuid4().hex
        pending = message.get("delivery_announcement")
        if pending is None:
            change = planned_change(message, report, sha256, utcnow(), owner)
            if change is None:
                return  # stale or duplicate
            written = await messages_repo.write_delivery(
                db,
                message["_id"],
                change["version"] - 1,
                change["delivery"],
                change["raw_blob_id"],
                change["announcement"],
            )
            if written is not None:
                if change["announcement"] is not None:
                    await announce(db, broker, written, owner)
                return
        elif may_take_over(pending, report, utcnow()):
            taken = await messages_repo.take_announcement(db, message["_id"], pending["owner"], owner, utcnow())
            if taken is not None:
                await announce(db, broker, taken, owner)
        else:
            if loop.time() + pause > deadline:
                raise Retry(f"another report is announcing a delivery change of message {message['_id']}")
            await asyncio.sleep(pause)  # the owner's publish takes milliseconds
            pause = min(pause * 2, POLL_MAX_SECONDS)
        if loop.time() > deadline:
            raise Retry(f"the delivery of message {message['_id']} kept changing under this report")
        message = await messages_repo.get_internal(db, report.message_id)  # look again
        if message is None:
            return


def make_handler(db: AsyncDatabase, broker: Broker):
    async def handle(report: DeliveryReported, delivery: Delivery) -> None:
        await apply_report(db, broker, report)

    return handle
