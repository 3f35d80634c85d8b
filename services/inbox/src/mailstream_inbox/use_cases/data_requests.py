"""Data requests (issue 17): start an erasure or export, tell every service, record each service's report, finish
(an export by storing its archive); and the retention job that erases old conversations the same way. Routes and
consumers call these; they hold no rules.

The flow: the request is stored (with what inbox finds naming the address now), then `DataErasureRequested` (or
`DataExportRequested`) is published; every service (inbox included, from its own queue) does its part and publishes
`DataErasurePartDone`; `record_part` stores each report once and the last one finishes the request. A request whose publish the broker did
not confirm (the process died, the broker was away) stays `published: false`, and the relay publishes it again.
"""

import hashlib
import hmac
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from mailstream_common.broker import Broker, PublishError
from mailstream_common.contracts import DataErasurePartDone, DataErasureRequested, DataExportRequested, Event, utcnow

from .. import data_export
from ..data_erasure import normalise_address
from ..metrics import RETENTION_REMOVED
from ..repositories import conversations as conversations_repo
from ..repositories import data_erasure as erasure_repo
from ..repositories import data_exports as exports_repo
from ..repositories import data_requests as requests_repo
from ..repositories import dead_letters as dead_letters_repo
from ..settings import InboxSettings
from ..webhooks import repositories as webhooks_repo

log = logging.getLogger(__name__)

RETENTION_BATCH = 200  # conversations per account and run: the rest waits for the next run


def hash_secret(settings: InboxSettings) -> bytes:
    """The key of the address hashes a finished request keeps (derived from the gateway's own secret)."""
    return hashlib.sha256(b"mailstream data requests\x00" + settings.gateway_token.get_secret_value().encode()).digest()


def address_hash(secret: bytes, address: str) -> str:
    return "hmac-sha256:" + hmac.new(secret, normalise_address(address).encode(), hashlib.sha256).hexdigest()


def request_event(doc: dict[str, Any]) -> Event:
    if doc["type"] == "export":
        return DataExportRequested(
            request_id=doc["_id"],
            account_id=doc["account_id"],
            address=doc["address"],
            conversation_ids=doc.get("conversation_ids", []),
            message_ids=doc.get("message_ids", []),
            correlation_id=doc["_id"],
        )
    return DataErasureRequested(
        request_id=doc["_id"],
        account_id=doc["account_id"],
        reason="retention" if doc["type"] == "retention" else "request",
        address=doc.get("address"),
        conversation_ids=doc.get("conversation_ids", []),
        message_ids=doc.get("message_ids", []),
        keep_suppression=doc.get("keep_suppression", False),
        older_than=doc.get("older_than"),
        correlation_id=doc["_id"],
    )


async def publish(db: AsyncDatabase, broker: Broker, doc: dict[str, Any]) -> bool:
    """Publish the request's event; whether the broker confirmed it (if not, the relay tries again)."""
    try:
        await broker.publish(request_event(doc), correlation_id=doc["_id"])
    except (PublishError, ConnectionError, TimeoutError):
        log.warning("data request not published yet; the relay retries", extra={"request_id": doc["_id"]})
        return False
    await requests_repo.mark_published(db, doc["_id"])
    return True


async def start_request(
    db: AsyncDatabase,
    broker: Broker,
    account_id: str,
    kind: str,
    address: str,
    *,
    keep_suppression: bool = False,
    secret: bytes,
) -> tuple[dict[str, Any], bool]:
    """The running erasure or export of `address` in the account (a new one unless one is running);
    (request, created)."""
    address = normalise_address(address)
    conversation_ids, message_ids = await erasure_repo.find_targets(db, account_id, address)
    doc, created = await requests_repo.create_once(
        db,
        {
            "account_id": account_id,
            "type": kind,
            "address": address,
            "address_domain": address.rpartition("@")[2],
            "keep_suppression": keep_suppression and kind == "erase",
            "conversation_ids": conversation_ids,
            "message_ids": message_ids,
            "active_key": f"{kind}:" + address_hash(secret, address),
        },
    )
    if created:
        await publish(db, broker, doc)
    return doc, created


async def relay_unpublished(db: AsyncDatabase, broker: Broker, *, older_than_seconds: float) -> None:
    for doc in await requests_repo.unpublished(db, older_than=utcnow() - timedelta(seconds=older_than_seconds)):
        await publish(db, broker, doc)


async def record_part(
    db: AsyncDatabase, report: DataErasurePartDone, *, secret: bytes, export_ttl: timedelta = timedelta(hours=24)
) -> None:
    """Record a service's report once; the last one finishes the request (an export's archive is stored first).

    A redelivered report is recorded once but still tries to finish: the first delivery may have died between
    recording and finishing."""
    recorded = await requests_repo.record_part(db, report.request_id, report.service, report.counts, report.records)
    if recorded is None:
        recorded = await requests_repo.get_internal(db, report.request_id)
        if recorded is None or recorded.get("status") != "running":
            return  # unknown, or finished already
    elif recorded.get("type") == "retention":
        for kind, count in report.counts.items():
            RETENTION_REMOVED.labels(report.service, kind).inc(count)
    if not requests_repo.every_part_done(recorded):
        return
    archive: dict[str, Any] | None = None
    if recorded.get("type") == "export":
        archive = await _store_archive(db, recorded, export_ttl)
    address = recorded.get("address")
    finished = await requests_repo.finish_if_complete(
        db, report.request_id, address_hash=address_hash(secret, address) if address else None, archive=archive
    )
    if finished is not None:
        log.info("data request done", extra={"request_id": report.request_id, "type": finished.get("type")})


async def _store_archive(db: AsyncDatabase, request: dict[str, Any], ttl: timedelta) -> dict[str, Any]:
    """Build the export's archive (the mbox from inbox's messages, the records every service sent) and store it."""
    mbox = data_export.mbox_of(await erasure_repo.raw_mail(db, request["account_id"], request.get("message_ids", [])))
    parts = request.get("parts", {})
    records = {service: part.get("records", {}) for service, part in parts.items()}
    # Dated by the last report, not the clock: whoever builds it (two last reports at once) builds the same bytes.
    made_at = max(part["at"] for part in parts.values())
    made_at = made_at if made_at.tzinfo else made_at.replace(tzinfo=UTC)  # a client without tz_aware reads naive UTC
    data = data_export.archive_of(mbox, records, made_at=made_at)
    expires_at = made_at + ttl
    await exports_repo.put(db, request["_id"], data, expires_at=expires_at)
    return {"state": "ready", "size": len(data), "expires_at": expires_at}


async def take_archive(db: AsyncDatabase, account_id: str, request_id: str) -> tuple[str, bytes | None]:
    """("ok", bytes) the first time an admin downloads a ready archive; ("gone", None) after that or once it
    expired; ("not_ready", None) while the export runs; ("missing", None) for no such export in the account."""
    claimed = await requests_repo.claim_archive(db, account_id, request_id, now=utcnow())
    if claimed is None:
        doc = await requests_repo.get(db, account_id, request_id)
        if doc is None or doc.get("type") != "export":
            return "missing", None
        return ("gone" if doc.get("archive") else "not_ready"), None
    data = await exports_repo.take(db, request_id)
    return ("ok", data) if data is not None else ("gone", None)


async def export_inbox_part(db: AsyncDatabase, request: DataExportRequested) -> dict[str, list[dict[str, Any]]]:
    return await erasure_repo.export_records(db, request.account_id, request.conversation_ids, request.message_ids)


async def erase_inbox_part(db: AsyncDatabase, request: DataErasureRequested) -> dict[str, int]:
    counts = await erasure_repo.erase(
        db,
        request.account_id,
        address=request.address,
        conversation_ids=request.conversation_ids,
        older_than=request.older_than,
    )
    # The webhook deliveries (this service's webhooks package) keep the payloads they sent for a few days: those
    # naming the person, or (a whole conversation erased, as retention does) the erased conversations and messages.
    needles = (
        [request.address, *request.message_ids]
        if request.address
        else [*request.conversation_ids, *request.message_ids]
    )
    counts.update(await webhooks_repo.erase_deliveries_naming(db, request.account_id, needles))
    # Dead letters (messages a consumer gave up on, kept for an operator) may carry the person's mail.
    counts["dead_letters"] = await dead_letters_repo.erase_naming(db, request.account_id, needles)
    return counts


# --- retention ---------------------------------------------------------------------------------------------------


async def run_retention(db: AsyncDatabase, broker: Broker, *, now: datetime | None = None) -> int:
    """Start a retention erasure for each conversation older than its account's window; how many were started."""
    now = now or utcnow()
    started = 0
    async for account in requests_repo.accounts_with_retention(db):
        cutoff = now - timedelta(days=account["retention"]["messages_days"])
        for conversation in await _old_conversations(db, account["_id"], cutoff):
            doc, created = await requests_repo.create_once(
                db,
                {
                    "account_id": account["_id"],
                    "type": "retention",
                    "conversation_ids": [conversation["_id"]],
                    "message_ids": conversation.get("message_ids", []),
                    "older_than": cutoff,
                    "active_key": "conversation:" + conversation["_id"],
                },
            )
            if created:
                started += 1
                await publish(db, broker, doc)
    if started:
        log.info("retention started erasures", extra={"conversations": started})
    return started


async def _old_conversations(db: AsyncDatabase, account_id: str, cutoff: datetime) -> list[dict]:
    cursor = (
        db[conversations_repo.COLLECTION]
        .find({"account_id": account_id, "last_message_at": {"$lt": cutoff}}, {"_id": 1, "message_ids": 1})
        .sort([("last_message_at", 1)])
        .limit(RETENTION_BATCH)
    )
    return await cursor.to_list(RETENTION_BATCH)
