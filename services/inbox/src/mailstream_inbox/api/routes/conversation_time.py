"""Reorganising conversations and time in them: merge and unmerge, move a message (split), the timeline, snooze,
and scheduled (held) replies. Every id is scoped to the caller's account: another account's is 404; a merge or a
move across streams is 409. The logic is in `use_cases/conversation_moves.py`, `snooze.py`, `scheduled_send.py`.
"""

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from mailstream_common.pages import (
    DEFAULT_LIMIT,
    CursorParam,
    LimitParam,
    Page,
    decode_optional_cursor,
    encode_optional_cursor,
)

from ... import conversation_time as rules
from ...repositories import conversation_changes as changes_repo
from ...repositories import conversations as conversations_repo
from ...repositories import messages as messages_repo
from ...repositories import timeline as timeline_repo
from ...use_cases import conversation_moves, scheduled_send, snooze
from ..deps import BrokerDep, CurrentPrincipal, Db
from ..errors import COMMON_RESPONSES, NOT_FOUND_RESPONSE, not_found
from .conversations import ConversationPublic, conversation_public
from .messages import MessagePublic, message_public

router = APIRouter(tags=["conversations"], responses=COMMON_RESPONSES)

ConversationId = Annotated[str, Path(max_length=64)]
MessageId = Annotated[str, Path(max_length=64)]
CONFLICT = {409: {"description": "Not possible in this state (different streams, already merged, not snoozed, ...)"}}
_CONVERSATION = "5f0c3c1e9d2b4a0f8e7d6c5b4a392817"
_OTHER = "7a6b5c4d3e2f10a9b8c7d6e5f4a3b2c1"


class MergeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"into": _OTHER}]})
    into: str = Field(max_length=64, description="The conversation (same stream) that takes this one's messages")


class MoveRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"conversation_id": _OTHER}, {"conversation_id": None}]},
    )
    conversation_id: str | None = Field(
        max_length=64,
        description="Where to move the message (same stream); null splits it off into a new conversation",
    )


class MoveResult(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "kind": "split",
                    "message_id": "8e7d6c5b4a39281706f5e4d3c2b1a09f",
                    "from_conversation_id": _CONVERSATION,
                    "to_conversation_id": _OTHER,
                }
            ]
        }
    )
    kind: str = Field(description="split (into a new conversation), moved, or moved_back (the undo of a move)")
    message_id: str
    from_conversation_id: str
    to_conversation_id: str


class TimelineEntry(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "0f1e2d3c4b5a69788796a5b4c3d2e1f0",
                    "conversation_id": _CONVERSATION,
                    "kind": "merged",
                    "at": "2026-11-27T09:31:00Z",
                    "actor": "agent:3c2b1a09f8e7d6c5",
                    "details": {"merged": _CONVERSATION, "into": _OTHER, "messages_moved": 2},
                },
                {
                    "id": "1f1e2d3c4b5a69788796a5b4c3d2e1f0",
                    "conversation_id": _CONVERSATION,
                    "kind": "snoozed",
                    "at": "2026-11-27T09:32:00Z",
                    "actor": "agent:3c2b1a09f8e7d6c5",
                    "details": {"until": "2026-11-28T08:00:00+00:00"},
                },
            ]
        }
    )
    id: str
    conversation_id: str
    kind: str = Field(
        description="merged, unmerged, split, moved, moved_back, snoozed, unsnoozed, woke (details.reason: time or "
        "customer), reply_scheduled, scheduled_reply_cancelled, scheduled_reply_sent"
    )
    at: datetime
    actor: str = Field(description="agent:<key id>, customer or system")
    details: dict


class SnoozeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"until": "2026-11-28T08:00:00Z"}]})
    until: AwareDatetime = Field(description="When the conversation reopens by itself (within a year; with a zone)")


def _raise(status: int, reason: str) -> HTTPException:
    return HTTPException(status, detail=reason)


async def _conversation(db, account_id: str, conversation_id: str) -> dict:
    doc = await conversations_repo.get(db, account_id, conversation_id)
    if doc is None:
        raise not_found("conversation")
    return doc


@router.post(
    "/v1/conversations/{conversation_id}/merge",
    response_model=ConversationPublic,
    responses={**NOT_FOUND_RESPONSE, **CONFLICT},
    summary="Merge this conversation into another of the same stream",
)
async def merge_conversation(
    conversation_id: ConversationId, body: MergeRequest, principal: CurrentPrincipal, db: Db, broker: BrokerDep
) -> ConversationPublic:
    """Every message moves into `into`; this conversation then answers with `merged_into`, its id redirects there
    (messages, replies, snooze), and later mail for it threads into `into`. Undo with `POST .../unmerge`."""
    try:
        target = await conversation_moves.merge(
            db,
            broker,
            account_id=principal.account_id,
            source_id=conversation_id,
            target_id=body.into,
            actor=principal.actor,
        )
    except conversation_moves.MoveRefused as refused:
        raise _raise(refused.status, refused.reason) from None
    return conversation_public(target)


@router.post(
    "/v1/conversations/{conversation_id}/unmerge",
    response_model=ConversationPublic,
    responses={**NOT_FOUND_RESPONSE, **CONFLICT},
    summary="Undo a merge: move this conversation's messages back",
)
async def unmerge_conversation(
    conversation_id: ConversationId, principal: CurrentPrincipal, db: Db, broker: BrokerDep
) -> ConversationPublic:
    """The messages the merge brought into the other conversation come back (mail that arrived there since stays);
    `merged_into` is cleared."""
    try:
        doc = await conversation_moves.unmerge(
            db, broker, account_id=principal.account_id, source_id=conversation_id, actor=principal.actor
        )
    except conversation_moves.MoveRefused as refused:
        raise _raise(refused.status, refused.reason) from None
    return conversation_public(doc)


@router.post(
    "/v1/messages/{message_id}/move",
    response_model=MoveResult,
    responses={**NOT_FOUND_RESPONSE, **CONFLICT},
    summary="Move a message into another conversation, or split it off into a new one",
)
async def move_message(
    message_id: MessageId, body: MoveRequest, principal: CurrentPrincipal, db: Db, broker: BrokerDep
) -> MoveResult:
    """Its Message-ID moves along, so replies to it thread into the new place. Undo by moving it back."""
    try:
        moved = await conversation_moves.move_message(
            db,
            broker,
            account_id=principal.account_id,
            message_id=message_id,
            target_id=body.conversation_id,
            actor=principal.actor,
        )
    except conversation_moves.MoveRefused as refused:
        raise _raise(refused.status, refused.reason) from None
    return MoveResult(
        kind=moved.kind,
        message_id=message_id,
        from_conversation_id=moved.source["_id"],
        to_conversation_id=moved.target["_id"],
    )


@router.get(
    "/v1/conversations/{conversation_id}/timeline",
    response_model=Page[TimelineEntry],
    responses=NOT_FOUND_RESPONSE,
    summary="What was done to the conversation (merges, moves, snoozes, scheduled replies), oldest first",
)
async def conversation_timeline(
    conversation_id: ConversationId,
    principal: CurrentPrincipal,
    db: Db,
    limit: LimitParam = DEFAULT_LIMIT,
    cursor: CursorParam = None,
) -> Page[TimelineEntry]:
    await _conversation(db, principal.account_id, conversation_id)
    docs, last = await timeline_repo.list_page(
        db, principal.account_id, conversation_id, limit=limit, after=decode_optional_cursor(cursor)
    )
    items = [
        TimelineEntry(
            id=d["_id"],
            conversation_id=d["conversation_id"],
            kind=d["kind"],
            at=d["at"],
            actor=d["actor"],
            details=d.get("details") or {},
        )
        for d in docs
    ]
    return Page(items=items, next_cursor=encode_optional_cursor(last))


@router.put(
    "/v1/conversations/{conversation_id}/snooze",
    response_model=ConversationPublic,
    responses={**NOT_FOUND_RESPONSE, **CONFLICT, 503: {"description": "The broker is unavailable: not snoozed"}},
    summary="Snooze until a time",
)
async def snooze_conversation(
    conversation_id: ConversationId, body: SnoozeRequest, principal: CurrentPrincipal, db: Db, broker: BrokerDep
) -> ConversationPublic:
    """Status becomes `snoozed` (off the open list) until `until`, when it reopens by itself; a customer message
    reopens it at once. Snoozing again replaces the time."""
    conversation = await conversation_moves.resolve(
        db, principal.account_id, await _conversation(db, principal.account_id, conversation_id)
    )
    try:
        doc = await snooze.snooze(db, broker, conversation, body.until, principal.actor)
    except snooze.SnoozeRefused as refused:
        raise _raise(refused.status, refused.reason) from None
    return conversation_public(doc)


@router.delete(
    "/v1/conversations/{conversation_id}/snooze",
    response_model=ConversationPublic,
    responses={**NOT_FOUND_RESPONSE, **CONFLICT},
    summary="Cancel a snooze (reopen now)",
)
async def unsnooze_conversation(
    conversation_id: ConversationId, principal: CurrentPrincipal, db: Db, broker: BrokerDep
) -> ConversationPublic:
    conversation = await conversation_moves.resolve(
        db, principal.account_id, await _conversation(db, principal.account_id, conversation_id)
    )
    try:
        doc = await snooze.unsnooze(db, broker, conversation, principal.actor)
    except snooze.SnoozeRefused as refused:
        raise _raise(refused.status, refused.reason) from None
    return conversation_public(doc)


@router.get(
    "/v1/conversations/{conversation_id}/scheduled-replies",
    response_model=Page[MessagePublic],
    responses=NOT_FOUND_RESPONSE,
    summary="Replies held for a later time (soonest first)",
)
async def scheduled_replies(
    conversation_id: ConversationId, principal: CurrentPrincipal, db: Db, limit: LimitParam = DEFAULT_LIMIT
) -> Page[MessagePublic]:
    """Each item's `schedule` says when it leaves; once it left it is no longer listed here."""
    conversation = await conversation_moves.resolve(
        db, principal.account_id, await _conversation(db, principal.account_id, conversation_id)
    )
    docs = await changes_repo.held_replies(db, principal.account_id, conversation["_id"], limit=limit)
    return Page(items=[message_public(d) for d in docs], next_cursor=None)


@router.delete(
    "/v1/conversations/{conversation_id}/scheduled-replies/{message_id}",
    status_code=204,
    responses={**NOT_FOUND_RESPONSE, 409: {"description": "The reply has left already (or is leaving)"}},
    summary="Cancel a scheduled reply",
)
async def cancel_scheduled_reply(
    conversation_id: ConversationId, message_id: MessageId, principal: CurrentPrincipal, db: Db, broker: BrokerDep
) -> None:
    """The held reply is withdrawn (it never leaves, and leaves the conversation); 409 once it started to leave."""
    conversation = await conversation_moves.resolve(
        db, principal.account_id, await _conversation(db, principal.account_id, conversation_id)
    )
    existing = await messages_repo.get(db, principal.account_id, message_id)
    if existing is None or existing["conversation_id"] != conversation["_id"] or not existing.get("schedule"):
        raise not_found("scheduled reply")
    state = existing["schedule"]["state"]
    if not rules.may_transition(state, "cancelled"):
        raise _raise(409, f"the reply is {state}: it can no longer be cancelled")
    try:
        await scheduled_send.cancel(db, broker, principal.account_id, message_id, principal.actor)
    except LookupError:
        raise _raise(409, "the reply has started to leave: it can no longer be cancelled") from None
