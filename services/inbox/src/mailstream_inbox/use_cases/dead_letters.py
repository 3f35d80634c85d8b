"""Requeue and discard dead letters: written once for the API (an account's admins) and the CLI (the operator).

A requeue is a claim (one conditional update: `dead` -> `requeuing`), then the body put back on the queue it died
in (the default exchange with the queue's name: not through the topic exchange, whose other queues bound to the same
event processed it already), confirmed by the broker, then `requeued`. Of two operators requeueing one letter at
once exactly one claims it; a failed publish releases the claim; a process that dies after the confirm leaves a
claim whose lease runs out, and a later requeue publishes again: consumers are idempotent under redelivery, so the
message is still processed once.
"""

import logging
from dataclasses import dataclass
from typing import Any, Literal

from mailstream_common.broker import Broker, PublishError

from ..dead_letters import requeue_headers
from ..repositories import dead_letters as letters_repo

log = logging.getLogger(__name__)

REQUEUE_ALL_MAX = 1000


@dataclass(frozen=True)
class RequeueOutcome:
    letter_id: str
    outcome: Literal["requeued", "not_found", "not_dead", "publish_failed"]
    detail: str = ""


async def requeue(db, broker: Broker, letter_id: str, *, account_id: str | None, by: str) -> RequeueOutcome:
    letter = await letters_repo.claim_requeue(db, letter_id, account_id=account_id, by=by)
    if letter is None:
        exists = await letters_repo.get(db, letter_id, account_id=account_id)
        return RequeueOutcome(letter_id, "not_found" if exists is None else "not_dead")
    body = await letters_repo.body_of(db, letter_id)
    try:
        await broker.publish_to_queue(
            letter["origin_queue"],
            body,
            headers=requeue_headers(letter.get("headers", []), letter["requeues"]),
            message_id=letter.get("message_id"),
            correlation_id=letter.get("correlation_id"),
            content_type=letter.get("content_type"),
        )
    except PublishError as exc:
        await letters_repo.release_requeue(db, letter)
        log.warning("dead letter not requeued", extra={"letter_id": letter_id, "error": str(exc)})
        return RequeueOutcome(letter_id, "publish_failed", "the broker did not confirm the message; try again")
    await letters_repo.finish_requeue(db, letter)
    log.info(
        "dead letter requeued",
        extra={"letter_id": letter_id, "queue": letter["origin_queue"], "requeues": letter["requeues"], "by": by},
    )
    return RequeueOutcome(letter_id, "requeued")


async def requeue_queue(
    db, broker: Broker, queue: str, *, account_id: str | None, by: str, limit: int = REQUEUE_ALL_MAX
) -> list[RequeueOutcome]:
    """Requeue the queue's dead letters (oldest first, at most `limit`), one by one, each claimed on its own."""
    ids = await letters_repo.dead_ids(db, account_id=account_id, queue=queue, limit=limit)
    outcomes = []
    for letter_id in ids:
        outcome = await requeue(db, broker, letter_id, account_id=account_id, by=by)
        outcomes.append(outcome)
        if outcome.outcome == "publish_failed":  # the broker is not taking messages: stop rather than fail each
            break
    return outcomes


async def discard(db, letter_id: str, *, account_id: str | None, reason: str, by: str) -> dict[str, Any] | str:
    """The discarded letter, or why not: `not_found`, `not_dead`."""
    letter = await letters_repo.discard(db, letter_id, account_id=account_id, reason=reason, by=by)
    if letter is not None:
        log.info("dead letter discarded", extra={"letter_id": letter_id, "by": by})
        return letter
    exists = await letters_repo.get(db, letter_id, account_id=account_id)
    return "not_found" if exists is None else "not_dead"
