"""Dead letters (admin keys): the messages of this account that a consumer gave up on, why, and what to do next.

A letter concerns this account when its message names exactly this account (`account_id`, or its only stream
target); others are 404 here, and the platform's operator sees every letter with `mailstream dead-letters`.
The body is never returned as it is: `preview` omits mail bytes and redacts fields that look like secrets.
"""

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from mailstream_common.pages import (
    DEFAULT_LIMIT,
    CursorParam,
    LimitParam,
    Page,
    decode_optional_cursor,
    encode_optional_cursor,
)

from ...dead_letters import shown_headers
from ...payload_types import HeaderSafeStr
from ...repositories import dead_letters as letters_repo
from ...use_cases import dead_letters as dead_letters_use_case
from ..deps import AdminPrincipal, BrokerDep, Db
from ..errors import COMMON_RESPONSES, NOT_FOUND_RESPONSE, conflict, not_found

router = APIRouter(tags=["dead letters"], responses=COMMON_RESPONSES)

LetterId = Annotated[str, Path(max_length=300, description="`<queue>:<message id>`, from the list")]
QueueName = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[a-z0-9_.-]+$")]
State = Literal["dead", "requeuing", "requeued", "discarded"]

_EXAMPLE_SUMMARY = {
    "id": "inbox.store:5b0e3c1d9a7f4e2b8c6d1a0f9e8d7c6b",
    "queue": "inbox.store",
    "state": "dead",
    "reason": "Reject: stream 8c1f... is not known here at store.py:212",
    "attempts": 8,
    "event": "mail.analysed",
    "origin_exchange": "mailstream.events",
    "origin_routing_key": "mail.analysed",
    "message_id": "5b0e3c1d9a7f4e2b8c6d1a0f9e8d7c6b",
    "correlation_id": "c0ffee0123456789abcdef0123456789",
    "first_seen_at": "2026-12-05T02:10:00Z",
    "dead_at": "2026-12-05T02:41:13Z",
    "requeues": 0,
    "size": 18422,
}


class DeadLetterSummary(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_EXAMPLE_SUMMARY]})

    id: str
    queue: str = Field(description="The queue whose consumer gave up on it (it waits in `<queue>.dead`)")
    state: State = Field(description="dead: waiting; requeuing/requeued: put back; discarded: dropped with a reason")
    reason: str = Field(description="The last error: its type, message and where it was raised")
    attempts: int = Field(description="Deliveries tried before it was dead-lettered")
    event: str | None = Field(description="The message's event name (its contract), when it had one")
    origin_exchange: str | None = Field(description="The exchange it was first published to")
    origin_routing_key: str | None = Field(description="Its routing key there (the event name)")
    message_id: str | None
    correlation_id: str | None = Field(description="Follows the mail or request through every queue and log line")
    first_seen_at: datetime | None = Field(description="When its first attempt started (set once it was retried)")
    dead_at: datetime
    requeues: int = Field(description="How often it was requeued so far")
    size: int = Field(description="Body size in bytes")


class HeaderPublic(BaseModel):
    name: str
    value: Any


class HistoryEntry(BaseModel):
    event: Literal["died", "requeued", "discarded"]
    at: datetime
    by: str | None = Field(default=None, description="Who requeued or discarded it (`api_key:<id>`, `cli`)")
    reason: str | None = Field(default=None, description="Why it died, or why it was discarded")
    attempts: int | None = Field(default=None, description="Deliveries tried before this death")


class DiscardPublic(BaseModel):
    reason: str
    by: str
    at: datetime


class DeadLetterPublic(DeadLetterSummary):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    **_EXAMPLE_SUMMARY,
                    "headers": [
                        {"name": "x-event", "value": "mail.analysed"},
                        {"name": "x-schema-version", "value": 1},
                        {"name": "x-origin-queue", "value": "inbox.store"},
                    ],
                    "preview": {
                        "mail_id": "m-1",
                        "subject": "Where is my parcel?",
                        "raw": "[24560 characters omitted]",
                    },
                    "history": [
                        {
                            "event": "died",
                            "at": "2026-12-05T02:41:13Z",
                            "reason": "Reject: stream 8c1f... is not known here at store.py:212",
                            "attempts": 8,
                        }
                    ],
                    "requeued_at": None,
                    "discard": None,
                }
            ]
        }
    )

    headers: list[HeaderPublic] = Field(description="Broker headers (names that look like secrets are redacted)")
    preview: Any = Field(
        description="The JSON body, bounded: mail and file bytes replaced by their size, secret-looking fields"
        " redacted, long strings and lists cut; null when the body is not JSON"
    )
    history: list[HistoryEntry] = Field(description="Each death, requeue and discard of this letter, oldest first")
    requeued_at: datetime | None
    discard: DiscardPublic | None


class RequeueAll(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"queue": "inbox.store"}]})
    queue: QueueName


class RequeueAllResult(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"requeued": ["inbox.store:5b0e3c1d9a7f4e2b8c6d1a0f9e8d7c6b"], "failed": []}]}
    )
    requeued: list[str]
    failed: list[str] = Field(description="Letters the broker did not confirm (still dead; try again)")


class Discard(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"reason": "duplicate of a mail the customer re-sent"}]}
    )
    reason: Annotated[HeaderSafeStr, Field(min_length=1, max_length=500)]


def to_summary(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": doc["_id"],
        **{
            name: doc.get(name)
            for name in (
                "queue",
                "state",
                "reason",
                "attempts",
                "event",
                "origin_exchange",
                "origin_routing_key",
                "message_id",
                "correlation_id",
                "first_seen_at",
                "dead_at",
                "requeues",
                "size",
            )
        },
    }


def to_public(doc: dict[str, Any]) -> DeadLetterPublic:
    return DeadLetterPublic(
        **to_summary(doc),
        headers=shown_headers(doc.get("headers", [])),
        preview=doc.get("preview"),
        history=doc.get("history", []),
        requeued_at=doc.get("requeued_at"),
        discard=doc.get("discard"),
    )


def _by(principal) -> str:
    return f"api_key:{principal.key_id}"


@router.get("/v1/dead-letters", response_model=Page[DeadLetterSummary], summary="List dead letters (admin)")
async def list_dead_letters(
    principal: AdminPrincipal,
    db: Db,
    queue: Annotated[str | None, Query(max_length=200, description="Only this queue's letters")] = None,
    state: Annotated[State, Query(description="Letters in this state (default: waiting ones)")] = "dead",
    limit: LimitParam = DEFAULT_LIMIT,
    cursor: CursorParam = None,
) -> Page[DeadLetterSummary]:
    docs, next_values = await letters_repo.list_letters(
        db, account_id=principal.account_id, state=state, queue=queue, limit=limit, after=decode_optional_cursor(cursor)
    )
    return Page(
        items=[DeadLetterSummary(**to_summary(d)) for d in docs], next_cursor=encode_optional_cursor(next_values)
    )


@router.get("/v1/dead-letters/{letter_id}", response_model=DeadLetterPublic, responses=NOT_FOUND_RESPONSE)
async def get_dead_letter(letter_id: LetterId, principal: AdminPrincipal, db: Db) -> DeadLetterPublic:
    doc = await letters_repo.get(db, letter_id, account_id=principal.account_id)
    if doc is None:
        raise not_found("dead letter")
    return to_public(doc)


_NOT_DEAD = {409: {"description": "The letter is not dead (already requeued or discarded)"}}


@router.post(
    "/v1/dead-letters/{letter_id}/requeue",
    response_model=DeadLetterPublic,
    summary="Put a dead letter back on its queue (admin)",
    responses={**NOT_FOUND_RESPONSE, **_NOT_DEAD, 503: {"description": "The broker did not confirm; still dead"}},
)
async def requeue_dead_letter(
    letter_id: LetterId, principal: AdminPrincipal, db: Db, broker: BrokerDep
) -> DeadLetterPublic:
    outcome = await dead_letters_use_case.requeue(
        db, broker, letter_id, account_id=principal.account_id, by=_by(principal)
    )
    if outcome.outcome == "not_found":
        raise not_found("dead letter")
    if outcome.outcome == "not_dead":
        raise conflict("the letter is not dead (already requeued or discarded)")
    if outcome.outcome == "publish_failed":
        raise HTTPException(503, detail=outcome.detail)
    doc = await letters_repo.get(db, letter_id, account_id=principal.account_id)
    if doc is None:  # expired in between: not for a just-requeued letter, but never a 500
        raise not_found("dead letter")
    return to_public(doc)


@router.post(
    "/v1/dead-letters/requeue",
    response_model=RequeueAllResult,
    summary="Put every dead letter of a queue back (admin)",
)
async def requeue_all_dead_letters(
    body: RequeueAll, principal: AdminPrincipal, db: Db, broker: BrokerDep
) -> RequeueAllResult:
    outcomes = await dead_letters_use_case.requeue_queue(
        db, broker, body.queue, account_id=principal.account_id, by=_by(principal)
    )
    return RequeueAllResult(
        requeued=[o.letter_id for o in outcomes if o.outcome == "requeued"],
        failed=[o.letter_id for o in outcomes if o.outcome == "publish_failed"],
    )


@router.post(
    "/v1/dead-letters/{letter_id}/discard",
    response_model=DeadLetterPublic,
    summary="Drop a dead letter, recording why (admin)",
    responses={**NOT_FOUND_RESPONSE, **_NOT_DEAD},
)
async def discard_dead_letter(
    letter_id: LetterId, body: Discard, principal: AdminPrincipal, db: Db
) -> DeadLetterPublic:
    result = await dead_letters_use_case.discard(
        db, letter_id, account_id=principal.account_id, reason=body.reason, by=_by(principal)
    )
    if result == "not_found":
        raise not_found("dead letter")
    if result == "not_dead":
        raise conflict("the letter is not dead (already requeued or discarded)")
    return to_public(result)
