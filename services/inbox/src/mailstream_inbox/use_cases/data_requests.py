"""Data requests (issue 17): start an erasure, tell every service, record each service's report, finish; and the
retention job that erases old conversations the same way. Routes and consumers call these; they hold no rules.

The flow: the request is stored (with what inbox finds naming the address now), then `DataErasureRequested` is
published; every service (inbox included, from its own queue) erases its part and publishes `DataErasurePartDone`;
`record_part` stores each report once and the last one finishes the request. A request whose publish the broker did
not confirm (the process died, the broker was away) stays `published: false`, and the relay publishes it again.
"""

import hashlib
import hmac
import logging
from datetime import datetime, timedelta
from typing import Any

from prometheus_client import Counter
from pymongo.asynchronous.database import AsyncDatabase

from mailstream_common.broker import Broker, PublishError
from mailstream_common.contracts import DataErasurePartDone, DataErasureRequested, utcnow

from ..data_erasure import normalise_address
from ..repositories import conversations as conversations_repo
from ..repositories import data_erasure as erasure_repo
from ..repositories import data_requests as requests_repo
from ..settings import InboxSettings

log = logging.getLogger(__name__)

RETENTION_REMOVED = Counter(
    "mailstream_inbox_retention_removed_total",
    "What retention erased, by the service that removed it and the kind of record",
    ["service", "kind"],
)
RETENTION_BATCH = 200  # conversations per account and run: the rest waits for the next run


def hash_secret(settings: InboxSettings) -> bytes:
    """The key of the address hashes a finished request keeps (derived from the gateway's own secret)."""
    return hashlib.sha256(b"mailstream data requests\x00" + settings.gateway_token.get_secret_value().encode()).digest()


def address_hash(secret: bytes, address: str) -> str:
    return "hmac-sha256:" + hmac.new(secret, normalise_address(address).encode(), hashlib.sha256).hexdigest()


def erasure_event(doc: dict[str, Any]) -> DataErasureRequested:
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
        await broker.publish(erasure_event(doc), correlation_id=doc["_id"])
    except (PublishError, ConnectionError, TimeoutError):
        log.warning("data request not published yet; the relay retries", extra={"request_id": doc["_id"]})
        return False
    await requests_repo.mark_published(db, doc["_id"])
    return True


async def start_erasure(
    db: AsyncDatabase, broker: Broker, account_id: str, address: str, *, keep_suppression: bool, secret: bytes
) -> tuple[dict[str, Any], bool]:
    """The running erasure of `address` in the account (a new one unless one is running); (request, created)."""
    address = normalise_address(address)
    conversation_ids, message_ids = await erasure_repo.find_targets(db, account_id, address)
    doc, created = await requests_repo.create_once(
        db,
        {
            "account_id": account_id,
            "type": "erase",
            "address": address,
            "address_domain": address.rpartition("@")[2],
            "keep_suppression": keep_suppression,
            "conversation_ids": conversation_ids,
            "message_ids": message_ids,
            "active_key": "erase:" + address_hash(secret, address),
        },
    )
    if created:
        await publish(db, broker, doc)
    return doc, created


async def relay_unpublished(db: AsyncDatabase, broker: Broker, *, older_than_seconds: float) -> None:
    for doc in await requests_repo.unpublished(db, older_than=utcnow() - timedelta(seconds=older_than_seconds)):
        await publish(db, broker, doc)


async def record_part(db: AsyncDatabase, report: DataErasurePartDone, *, secret: bytes) -> None:
    recorded = await requests_repo.record_part(db, report.request_id, report.service, report.counts)
    if recorded is None:
        return  # a duplicate report (or an unknown request): recorded already
    if recorded.get("type") == "retention":
        for kind, count in report.counts.items():
            RETENTION_REMOVED.labels(report.service, kind).inc(count)
    address = recorded.get("address")
    finished = await requests_repo.finish_if_complete(
        db, report.request_id, address_hash=address_hash(secret, address) if address else None
    )
    if finished is not None:
        log.info("data request done", extra={"request_id": report.request_id, "type": finished.get("type")})


async def erase_inbox_part(db: AsyncDatabase, request: DataErasureRequested) -> dict[str, int]:
    return await erasure_repo.erase(
        db,
        request.account_id,
        address=request.address,
        conversation_ids=request.conversation_ids,
        older_than=request.older_than,
    )


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
