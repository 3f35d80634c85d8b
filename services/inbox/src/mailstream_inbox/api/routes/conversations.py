"""Conversations: list/search/filter, open, change (status, tags, assignee, priority), read messages, reply.

Every query is scoped to the caller's account: another account's conversation is 404, like a missing one.
Agents and admins alike may do all of this (it is the inbox work).
"""

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Request
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from mailstream_common.contracts import Address, utcnow
from mailstream_common.pages import (
    DEFAULT_LIMIT,
    CursorParam,
    LimitParam,
    Page,
    decode_optional_cursor,
    encode_optional_cursor,
)

from ... import search_terms
from ...consumers.actions import conversation_changed
from ...conversation_time import schedule_refusal
from ...payload_types import EmailAddressStr, HeaderSafeStr
from ...reply_builder import ReplyContent
from ...repositories import conversations as conversations_repo
from ...repositories import messages as messages_repo
from ...suppression_lookup import SuppressionLookup
from ...use_cases import conversation_moves
from ...use_cases.reply_attachments import NO_SUCH_ATTACHMENT
from ...use_cases.send_reply import Refused, ReplyRequest, send_reply
from ..deps import BrokerDep, CurrentPrincipal, Db, SettingsDep
from ..errors import COMMON_RESPONSES, NOT_FOUND_RESPONSE, conflict, field_error, not_found
from .messages import MessagePublic, message_public

router = APIRouter(tags=["conversations"], responses=COMMON_RESPONSES)

ConversationId = Annotated[str, Path(max_length=64)]
Status = Literal["open", "pending", "closed"]
ShownStatus = Literal["open", "pending", "closed", "snoozed"]  # snoozed: set by PUT .../snooze, not by PATCH
Priority = Literal["low", "normal", "high", "urgent"]
Tag = Annotated[HeaderSafeStr, Field(min_length=1, max_length=100)]


class Customer(BaseModel):
    name: str = ""
    address: str


class SearchHit(BaseModel):
    term: str = Field(description="A word of `q`, normalised (case-folded)")
    field: Literal["subject", "customer", "message"] = Field(
        description="Where the conversation has a term starting with it: its subject, its customer, else a message"
    )


class ConversationPublic(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "5f0c3c1e9d2b4a0f8e7d6c5b4a392817",
                    "topic_id": "0a1b2c3d4e5f60718293a4b5c6d7e8f9",
                    "stream_id": "9f8e7d6c5b4a39281706f5e4d3c2b1a0",
                    "subject": "Where is my order #1234?",
                    "customer": {"name": "Ann Customer", "address": "ann@example.net"},
                    "status": "open",
                    "tags": ["shipping"],
                    "assignee": None,
                    "priority": "normal",
                    "message_count": 3,
                    "last_message_at": "2026-11-27T09:30:00Z",
                    "created_at": "2026-11-26T17:02:11Z",
                    "participants": ["ann@example.net", "carl@example.com"],
                    "merged_into": None,
                    "snoozed_until": None,
                },
                {
                    "id": "6a1d4d2f0e3c5b1a9f8e7d6c5b4a3928",
                    "topic_id": "0a1b2c3d4e5f60718293a4b5c6d7e8f9",
                    "stream_id": "9f8e7d6c5b4a39281706f5e4d3c2b1a0",
                    "subject": "Invoice question",
                    "customer": {"name": "Ann Customer", "address": "ann@example.net"},
                    "status": "snoozed",
                    "tags": [],
                    "assignee": "agent-ann",
                    "priority": "normal",
                    "message_count": 2,
                    "last_message_at": "2026-11-27T08:10:00Z",
                    "created_at": "2026-11-27T08:02:00Z",
                    "participants": ["ann@example.net"],
                    "merged_into": None,
                    "snoozed_until": "2026-11-28T08:00:00Z",
                },
                {
                    "id": "7b2e5e3a1f4d6c2b0a9f8e7d6c5b4a39",
                    "topic_id": "0a1b2c3d4e5f60718293a4b5c6d7e8f9",
                    "stream_id": "9f8e7d6c5b4a39281706f5e4d3c2b1a0",
                    "subject": "Order #1234 again",
                    "customer": {"name": "Ann Customer", "address": "ann@example.net"},
                    "status": "open",
                    "tags": [],
                    "assignee": None,
                    "priority": "normal",
                    "message_count": 0,
                    "last_message_at": "2026-11-27T08:15:00Z",
                    "created_at": "2026-11-27T08:15:00Z",
                    "participants": ["ann@example.net"],
                    "merged_into": "5f0c3c1e9d2b4a0f8e7d6c5b4a392817",
                    "snoozed_until": None,
                },
            ]
        }
    )
    id: str
    topic_id: str
    stream_id: str
    subject: str
    customer: Customer
    status: ShownStatus
    tags: list[str]
    assignee: str | None
    priority: Priority
    message_count: int
    last_message_at: datetime
    created_at: datetime
    match: list[SearchHit] | None = Field(default=None, description="Only in a search (`q`): why it matched")
    participants: list[str] = Field(
        default_factory=list,
        description="Lower-case addresses of the customer and everyone on To/Cc of its inbound mail, never the "
        "account's own (stream and forwarding addresses, the forwarder of a forwarded mail); at most 50",
    )
    merged_into: str | None = Field(
        default=None,
        description="Set once merged: the conversation that took its messages (this id redirects there)",
    )
    snoozed_until: datetime | None = Field(
        default=None, description="While status is `snoozed`: when it reopens by itself"
    )


def conversation_public(doc: dict, words: list[str] | None = None) -> ConversationPublic:
    return ConversationPublic(
        id=doc["_id"],
        topic_id=doc["topic_id"],
        stream_id=doc["stream_id"],
        subject=doc.get("subject", ""),
        customer=Customer.model_validate(doc.get("customer") or {"address": ""}),
        status=doc.get("status", "open"),
        tags=doc.get("tags", []),
        assignee=doc.get("assignee"),
        priority=doc.get("priority", "normal"),
        message_count=doc.get("message_count", 0),
        last_message_at=doc["last_message_at"],
        created_at=doc["created_at"],
        match=[SearchHit.model_validate(hit) for hit in search_terms.match_reason(doc, words)] if words else None,
        participants=doc.get("participants", []),
        merged_into=doc.get("merged_into"),
        snoozed_until=(doc.get("snooze") or {}).get("until") if doc.get("status") == "snoozed" else None,
    )


class ConversationUpdate(BaseModel):
    """Only the fields present change; `assignee: null` unassigns."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"status": "closed", "tags": ["refund", "vip"], "assignee": "agent-ann"}]},
    )
    status: Status | None = None
    tags: list[Tag] | None = Field(default=None, max_length=100)
    assignee: Annotated[HeaderSafeStr, Field(max_length=200)] | None = None
    priority: Priority | None = None

    @model_validator(mode="after")
    def _no_null_except_assignee(self) -> "ConversationUpdate":
        for name in ("status", "tags", "priority"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} may not be null")
        return self


class AddressIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Annotated[HeaderSafeStr, Field(max_length=200)] = ""
    address: EmailAddressStr


class ReplyCreate(BaseModel):
    """Either your own `text`/`html`, or a `canned_response_id` (its placeholders are filled in)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"text": "Hello Ann,\n\nyour parcel left our warehouse today.", "apply_template": True},
                {"canned_response_id": "3c2b1a09f8e7d6c5b4a3928170f6e5d4"},
                {"html": "<p>Hello <b>Ann</b></p>", "cc": [{"name": "Billing", "address": "billing@acme.com"}]},
                {
                    "text": "Hello Ann, I copy our warehouse.",
                    "to": [{"name": "Ann Customer", "address": "ann@example.net"}],
                    "cc": [{"name": "Warehouse", "address": "warehouse@acme.com"}],
                    "bcc": [{"address": "audit@acme.com"}],
                },
                {"text": "Good morning Ann, here is the update.", "send_at": "2026-11-28T08:00:00Z"},
                {"text": "Your invoice is attached.", "attachment_ids": ["4d3c2b1a09f8e7d6c5b4a3928170f6e5"]},
                {"text": "Hello Ann, here is the update.", "on_suppressed": "refuse"},
            ]
        },
    )
    text: str | None = Field(default=None, max_length=1_000_000)
    html: str | None = Field(default=None, max_length=2_000_000)
    canned_response_id: str | None = Field(default=None, max_length=64)
    apply_template: bool = Field(default=True, description="Wrap in the email template (stream's, else account's)")
    to: list[AddressIn] | None = Field(
        default=None,
        max_length=20,
        description="Omitted: the customer (and the last inbound mail's sender when that was someone else)",
    )
    cc: list[AddressIn] | None = Field(
        default=None,
        max_length=20,
        description="Omitted: reply-all, the other To/Cc of the last inbound mail minus the account's own addresses",
    )
    bcc: list[AddressIn] | None = Field(default=None, max_length=20, description="Omitted: nobody")
    on_suppressed: Literal["refuse", "warn"] = Field(
        default="warn",
        description="A recipient on the account's suppression list: `refuse` answers 422 naming them (nothing is "
        "sent); `warn` queues the reply with a warning per address (the sender will not send it: it fails as "
        "`suppressed`)",
    )
    send_at: AwareDatetime | None = Field(
        default=None,
        description="Hold the reply until then (within a year; listed under .../scheduled-replies and cancellable "
        "until it leaves); a time not in the future sends at once",
    )
    attachment_ids: list[Annotated[str, Field(max_length=64)]] = Field(
        default_factory=list,
        max_length=10,
        description="Uploads (`POST /v1/attachments`) to attach; a canned response adds its own files",
        examples=[["4d3c2b1a09f8e7d6c5b4a3928170f6e5"]],
    )

    @model_validator(mode="after")
    def _one_source(self) -> "ReplyCreate":
        own = bool((self.text and self.text.strip()) or (self.html and self.html.strip()))
        if own == bool(self.canned_response_id):
            raise ValueError("give either text/html or canned_response_id (exactly one of the two)")
        return self


class ReplyRecipients(BaseModel):
    to: list[Customer]
    cc: list[Customer] = []
    bcc: list[Customer] = []


class ReplyQueued(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "message_id": "8e7d6c5b4a39281706f5e4d3c2b1a09f",
                    "status": "queued",
                    "send_at": None,
                    "recipients": {
                        "to": [{"name": "Ann Customer", "address": "ann@example.net"}],
                        "cc": [{"name": "", "address": "carl@example.com"}],
                        "bcc": [],
                    },
                    "warnings": [],
                },
                {
                    "message_id": "0f6e5d4c3b2a19087f6e5d4c3b2a1908",
                    "status": "queued",
                    "send_at": None,
                    "recipients": {
                        "to": [{"name": "Ann Customer", "address": "ann@example.net"}],
                        "cc": [{"name": "", "address": "eve@example.org"}],
                        "bcc": [],
                    },
                    "warnings": ["cc eve@example.org is not a participant of this conversation"],
                },
                {
                    "message_id": "1a6e5d4c3b2a19087f6e5d4c3b2a1908",
                    "status": "queued",
                    "send_at": None,
                    "recipients": {"to": [{"name": "Ann Customer", "address": "ann@example.net"}], "cc": [], "bcc": []},
                    "warnings": [
                        "ann@example.net is on the suppression list (asked us to stop): the sender will not send this "
                        "reply"
                    ],
                },
                {
                    "message_id": "9e7d6c5b4a39281706f5e4d3c2b1a09f",
                    "status": "scheduled",
                    "send_at": "2026-11-28T08:00:00Z",
                    "recipients": {
                        "to": [{"name": "Ann Customer", "address": "ann@example.net"}],
                        "cc": [],
                        "bcc": [],
                    },
                    "warnings": [],
                },
            ]
        }
    )
    message_id: str
    status: Literal["queued", "scheduled"] = "queued"
    send_at: datetime | None = Field(default=None, description="Scheduled replies: when it leaves")
    recipients: ReplyRecipients = Field(description="Who the reply goes to (Bcc only in the envelope)")
    warnings: list[str] = Field(
        default_factory=list,
        description="One per recipient who is not a participant of the conversation: sent anyway, never silently",
    )


@router.get("/v1/conversations", response_model=Page[ConversationPublic], summary="List and search conversations")
async def list_conversations(
    principal: CurrentPrincipal,
    db: Db,
    topic_id: Annotated[str | None, Query(max_length=64)] = None,
    stream_id: Annotated[str | None, Query(max_length=64)] = None,
    status: ShownStatus | None = None,
    q: Annotated[
        str | None,
        Query(
            max_length=200,
            description="Words, each the start of a word of the subject, the customer's name or address, or the "
            "start of a message (case-insensitive)",
        ),
    ] = None,
    tag: Annotated[str | None, Query(max_length=100)] = None,
    assignee: Annotated[str | None, Query(max_length=200)] = None,
    limit: LimitParam = DEFAULT_LIMIT,
    cursor: CursorParam = None,
) -> Page[ConversationPublic]:
    """Most recent activity first. `q` matches the subject, the customer, and the start of each message; each item
    of a search says where (`match`)."""
    words = search_terms.query_terms(q)
    if q and q.strip() and not words:  # only punctuation: no word to look for
        return Page(items=[], next_cursor=None)
    query = conversations_repo.list_query(
        principal.account_id,
        topic_id=topic_id,
        stream_id=stream_id,
        status=status,
        tag=tag,
        assignee=assignee,
        words=words,
    )
    docs, last = await conversations_repo.list_page(db, query, limit=limit, after=decode_optional_cursor(cursor))
    return Page(items=[conversation_public(d, words) for d in docs], next_cursor=encode_optional_cursor(last))


@router.get("/v1/conversations/{conversation_id}", response_model=ConversationPublic, responses=NOT_FOUND_RESPONSE)
async def get_conversation(conversation_id: ConversationId, principal: CurrentPrincipal, db: Db) -> ConversationPublic:
    doc = await conversations_repo.get(db, principal.account_id, conversation_id)
    if doc is None:
        raise not_found("conversation")
    return conversation_public(doc)


@router.patch("/v1/conversations/{conversation_id}", response_model=ConversationPublic, responses=NOT_FOUND_RESPONSE)
async def update_conversation(
    conversation_id: ConversationId, body: ConversationUpdate, principal: CurrentPrincipal, db: Db, broker: BrokerDep
) -> ConversationPublic:
    """Change status, tags (the whole list), assignee or priority; announces `conversation.changed`."""
    before = await conversations_repo.get(db, principal.account_id, conversation_id)
    if before is None:
        raise not_found("conversation")
    changes = body.model_dump(include=body.model_fields_set)
    if "tags" in changes:
        changes["tags"] = list(dict.fromkeys(changes["tags"]))
    changed = {k: v for k, v in changes.items() if before.get(k) != v}
    doc = before
    if changed:
        doc = await conversations_repo.update_fields(db, principal.account_id, conversation_id, changed)
        if doc is None:
            raise not_found("conversation")
        await broker.publish(conversation_changed(doc, principal.actor, None))
    return conversation_public(doc)


@router.get(
    "/v1/conversations/{conversation_id}/messages", response_model=Page[MessagePublic], responses=NOT_FOUND_RESPONSE
)
async def list_messages(
    conversation_id: ConversationId,
    principal: CurrentPrincipal,
    db: Db,
    limit: LimitParam = DEFAULT_LIMIT,
    cursor: CursorParam = None,
) -> Page[MessagePublic]:
    """Oldest first. A merged conversation's id lists the messages of the conversation it was merged into."""
    found = await conversations_repo.get(db, principal.account_id, conversation_id)
    if found is None:
        raise not_found("conversation")
    found = await conversation_moves.resolve(db, principal.account_id, found)
    docs, last = await messages_repo.list_page(
        db, principal.account_id, found["_id"], limit=limit, after=decode_optional_cursor(cursor)
    )
    return Page(items=[message_public(d) for d in docs], next_cursor=encode_optional_cursor(last))


@router.post(
    "/v1/conversations/{conversation_id}/replies",
    status_code=202,
    response_model=ReplyQueued,
    responses={
        **NOT_FOUND_RESPONSE,
        409: {"description": "The stream does not allow agents to send (monitoring only), or it was deleted"},
        422: {
            "description": "Invalid body; or, with `on_suppressed: refuse`, recipients on the suppression list (one "
            "error per address, `loc` [body, recipients], `input` the address)"
        },
        503: {
            "description": "The broker is unavailable, or (`on_suppressed: refuse`) the suppression list could not "
            "be checked: nothing will be sent, try again"
        },
    },
    summary="Reply to the customer",
)
async def reply(
    conversation_id: ConversationId,
    body: ReplyCreate,
    principal: CurrentPrincipal,
    db: Db,
    broker: BrokerDep,
    settings: SettingsDep,
    http_request: Request,
) -> ReplyQueued:
    """Queued for sending (202): by default reply-all to the last inbound mail minus the account's own addresses
    (the customer always on To); `to`/`cc`/`bcc` replace the defaults field by field. The response names the
    recipients, and warns about each one who is not a participant of the conversation. Subject `Re: <subject>`,
    threaded on the last customer message, with the conversation's token in the Message-ID and Reply-To; the
    stream's (or account's) email template applies unless `apply_template` is false."""
    conversation = await conversations_repo.get(db, principal.account_id, conversation_id)
    if conversation is None:
        raise not_found("conversation")
    conversation = await conversation_moves.resolve(db, principal.account_id, conversation)
    if body.send_at is not None and (refused := schedule_refusal(body.send_at, utcnow())) is not None:
        raise field_error(["body", "send_at"], refused.reason)
    request = ReplyRequest(
        requested_by=principal.actor,
        content=ReplyContent(text=body.text, html=body.html),
        canned_response_id=body.canned_response_id,
        apply_template=body.apply_template,
        to=None if body.to is None else [Address(name=a.name, address=a.address) for a in body.to],
        cc=None if body.cc is None else [Address(name=a.name, address=a.address) for a in body.cc],
        bcc=None if body.bcc is None else [Address(name=a.name, address=a.address) for a in body.bcc],
        reply_all=True,
        agent_name=principal.key_name,
        send_at=body.send_at,
        attachment_ids=tuple(body.attachment_ids),
        on_suppressed=body.on_suppressed,
    )
    lookup = suppression_lookup(http_request, settings)
    outcome = await send_reply(
        db, broker, conversation, request, inbound_domain=settings.inbound_domain, check_suppressed=lookup.check
    )
    if isinstance(outcome, Refused):
        if outcome.step == "recipients_not_suppressed":
            raise suppressed_error(outcome)
        if outcome.step == "suppressions_checked":
            raise HTTPException(503, detail=f"{outcome.reason}; nothing was sent, try again")
        if outcome.step == "canned_response_exists":
            raise field_error(["body", "canned_response_id"], outcome.reason)
        if outcome.step == "has_recipients":
            raise field_error(["body", "to"], outcome.reason)
        if outcome.step == "attachments_exist":
            if outcome.reason.startswith(NO_SUCH_ATTACHMENT):
                raise not_found("attachment")
            raise field_error(["body", "attachment_ids"], outcome.reason)
        raise conflict(outcome.reason)
    message = outcome.message
    schedule = message.get("schedule") or {}
    held = schedule.get("state") == "held"
    return ReplyQueued(
        message_id=message["_id"],
        status="scheduled" if held else "queued",
        send_at=schedule["send_at"] if held else None,
        recipients=ReplyRecipients(to=message.get("to", []), cc=message.get("cc", []), bcc=message.get("bcc", [])),
        warnings=list(outcome.warnings),
    )


def suppression_lookup(request: Request, settings) -> SuppressionLookup:
    return SuppressionLookup(request.app.state.http, settings.sender_url, settings.gateway_token.get_secret_value())


def suppressed_error(refused: Refused) -> HTTPException:
    """422 in FastAPI's validation shape, one error per suppressed address."""
    detail = [
        {
            "type": "suppressed",
            "loc": ["body", "recipients"],
            "msg": f"{address} is on the suppression list",
            "input": address,
        }
        for address in refused.addresses
    ]
    return HTTPException(422, detail=detail)
