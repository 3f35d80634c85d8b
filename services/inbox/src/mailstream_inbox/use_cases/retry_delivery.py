"""Retry a failed outbound message through the API: a new round of attempts, the same mail (same Message-ID, the
bytes the sender kept), sent at most once per retry.

`retry_plan` (pure) decides whether the message may be retried and what its delivery becomes; `retry` writes that
with one conditional update guarded by the delivery version the plan was made from (the same guard as the delivery
reports: `messages.write_delivery`). Of two retries at once (a double click) exactly one matches; the other reads
the message again, finds it queued and is refused (409). The winning write also stores the `ReplyRequested` of the
new round as the message's outbox copy, so the request is published once (`outbox`) even if this call dies: the
reply relay finds it. The sender starts the round only from its own `failed` record, so a redelivered command
of the round sends nothing twice either.
"""

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from mailstream_common.broker import Broker
from mailstream_common.contracts import Address, ReplyRequested, utcnow

from ..consumers.delivery import announce
from ..delivery_timeline import extended, retried_entry
from ..outbox import publish_pending_reply
from ..repositories import messages as messages_repo

log = logging.getLogger(__name__)

# What the sender reported for a message it gave up on or was refused: worth another try once the cause is fixed.
# A bounce is the remote side's answer after the relay took the mail (the suppression list counts it instead).
RETRYABLE_REPORTS = ("failed", None)  # None: never reached the sender (the broker refused the request)


@dataclass(frozen=True)
class RetryPlan:
    delivery: dict[str, Any]
    announcement: dict[str, Any]
    request: ReplyRequested


def refusal(message: dict[str, Any]) -> str | None:
    """Why this message cannot be retried now, or None."""
    delivery = message.get("delivery") or {}
    if message.get("direction") != "outbound":
        return "only an outbound message can be retried"
    if delivery.get("status") != "failed":
        return f"the message is {delivery.get('status', 'queued')}, not failed: only a failed message can be retried"
    if delivery.get("reported") not in RETRYABLE_REPORTS:
        return "the message bounced after the relay accepted it; a retry would send it to the same failing address"
    if message.get("delivery_announcement") is not None:
        return "the message's delivery is changing right now; try again in a moment"
    return None


def retry_request(message: dict[str, Any], retry_round: int, requested_by: str, now: datetime) -> ReplyRequested:
    """The reply command of the new round. A request the broker never took is still stored whole (the sender never
    saw it): that one, in the new round. Otherwise it is made from the stored message: the sender sends the bytes
    it kept from the first round (it refuses to build them again), so only what its checks read is needed."""
    if message.get("pending_event"):
        stored = ReplyRequested.model_validate(message["pending_event"])
        fresh = {"event_id": uuid.uuid4().hex, "occurred_at": now, "retry_round": retry_round}
        return stored.model_copy(update=fresh)
    return ReplyRequested(
        occurred_at=now,
        kind=message.get("kind", "reply"),
        account_id=message["account_id"],
        stream_id=message["stream_id"],
        conversation_id=message.get("conversation_id"),
        message_id=message["_id"],
        message_id_header=message["message_id_header"],
        from_=Address.model_validate(message["from"]),
        to=[Address.model_validate(a) for a in message.get("to", [])],
        cc=[Address.model_validate(a) for a in message.get("cc", [])],
        bcc=[Address.model_validate(a) for a in message.get("bcc", [])],
        reply_to=[Address.model_validate(a) for a in message.get("reply_to", [])],
        subject=message.get("subject", ""),
        in_reply_to=(message.get("in_reply_to") or [None])[0],
        references=message.get("references", []),
        text=message.get("text", ""),
        html=message.get("html"),
        requested_by=requested_by,
        retry_round=retry_round,
    )


def retry_plan(message: dict[str, Any], requested_by: str, now: datetime, owner: str) -> RetryPlan | str:
    """The message's delivery after a retry (queued, next round, a `retried` entry), its announcement and its new
    request; or the reason it cannot be retried."""
    if (reason := refusal(message)) is not None:
        return reason
    current = message["delivery"]
    retry_round = current.get("retry_round", 0) + 1
    entry = retried_entry(now, retry_round, requested_by)
    timeline = extended(current.get("timeline") or [], [entry])
    version = current.get("version", 0) + 1
    report_id = uuid.uuid4().hex
    delivery = {
        "status": "queued",
        "detail": "retry requested",
        "timeline": timeline,
        "retry_round": retry_round,
        "reported": "retried",
        "attempt": 0,
        "updated_at": now,
        "version": version,
        "report_id": report_id,
    }
    announcement = {
        "version": version,
        "report_id": report_id,
        "status": "queued",
        "detail": "retry requested",
        "timeline": timeline[-1:],
        "correlation_id": None,
        "owner": owner,
        "since": now,
    }
    return RetryPlan(delivery, announcement, retry_request(message, retry_round, requested_by, now))


async def retry(
    db: AsyncDatabase, broker: Broker, account_id: str, message_id: str, requested_by: str
) -> dict | str | None:
    """Retry the account's message: the message after (queued, its request published), the reason it cannot be
    retried, or None when the account has no such message."""
    message = await messages_repo.get_internal(db, message_id)
    if message is None or message.get("account_id") != account_id:
        return None
    owner = uuid.uuid4().hex
    plan = retry_plan(message, requested_by, utcnow(), owner)
    if isinstance(plan, str):
        return plan
    written = await messages_repo.write_retry(
        db,
        message_id,
        plan.delivery["version"] - 1,
        plan.delivery,
        plan.announcement,
        plan.request.model_dump(mode="json", by_alias=True),
        plan.request.occurred_at,
    )
    if written is None:  # another retry (or a report) changed the delivery first
        again = await messages_repo.get_internal(db, message_id)
        if again is None:
            return None
        return refusal(again) or "the message's delivery changed meanwhile; look at it again"
    log.info("delivery retry requested", extra={"message_id": message_id, "retry_round": plan.request.retry_round})
    # Both are stored with the retry: an announcement left pending is finished by the next report (its lease runs
    # out), a request left unpublished by the reply relay. So a broker outage does not undo the retry.
    try:
        await announce(db, broker, written, owner)
    except Exception:
        log.warning("could not announce the retry yet", extra={"message_id": message_id}, exc_info=True)
    try:
        await publish_pending_reply(db, broker, written)
    except Exception:
        log.warning("retry stored; the reply relay will publish it", extra={"message_id": message_id}, exc_info=True)
    return written
