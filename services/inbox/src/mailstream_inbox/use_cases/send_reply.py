"""Send a reply to a conversation's customer: an agent's (the replies route) or automation's auto-reply (the actions
consumer). Both run the same steps, in order (Postal's outgoing processor is the model):

1. the guard steps in `STEPS`, each a small function that loads what it needs and returns a `Refused` outcome or
   None; the first refusal ends the send;
2. build the reply (`replies.build_reply`, pure), store it as 'queued' with its `ReplyRequested` (outbox), make
   its Message-ID a thread key of the conversation;
3. publish the request once (`outbox`), then announce the outbound message to live clients (best effort).

A reply with a dedup key (an auto-reply: `auto_reply:<rule>:<trigger>`) is stored once; when it exists already (a
redelivered command) the send only completes its publish and never builds a second one. A reply without one (an
agent's) is nobody's retry: when the broker refuses it, it is marked failed and the error goes to the caller.
"""

import dataclasses
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from pymongo.asynchronous.database import AsyncDatabase

from mailstream_common.broker import Broker
from mailstream_common.contracts import Address, EmailTemplate, MessageStored, utcnow

from .. import participants as people
from .. import reply_tokens
from ..conversation_time import new_schedule
from ..outbox import publish_pending_reply
from ..reply_builder import (
    AUTO_REPLY_HEADERS,
    DEFAULT_TEMPLATE,
    OutboundReply,
    ReplyContent,
    ReplyContext,
    auto_reply_refusal,
    build_reply,
)
from ..repositories import canned_responses as canned_repo
from ..repositories import conversations as conversations_repo
from ..repositories import messages as messages_repo
from ..repositories import streams as streams_repo
from ..repositories import templates as templates_repo
from ..suppression_lookup import SuppressionAnswer
from . import reply_attachments, scheduled_send

log = logging.getLogger(__name__)

EVENT_TEXT_CHARS = 16_000


@dataclass(frozen=True)
class ReplyRequest:
    """What to send: own `content`, or a canned response (`canned_response_id`, its placeholders filled in)."""

    requested_by: str
    content: ReplyContent | None = None
    canned_response_id: str | None = None
    apply_template: bool = True
    cc: Sequence[Address] | None = None  # None: the default (reply-all's Cc, or nobody)
    agent_name: str | None = None  # None: the stream's display name (automation speaks as the stream)
    kind: Literal["reply", "auto_reply"] = "reply"
    dedup_key: str | None = None
    trigger_headers: Sequence[dict[str, str]] = ()  # the mail an auto-reply answers (RFC 3834 checks)
    to: Sequence[Address] | None = None  # None: the default (the customer, plus the last sender on reply-all)
    bcc: Sequence[Address] | None = None
    reply_all: bool = False  # default recipients: reply-all to the last inbound mail (agents), else the customer
    send_at: datetime | None = None  # in the future: held until then (`scheduled_send`)
    attachment_ids: Sequence[str] = ()  # the agent's uploads (a canned response brings its own files too)
    on_suppressed: Literal["refuse", "warn"] = "warn"  # a recipient on the suppression list: refuse, or queue + warn


@dataclass(frozen=True)
class Sent:
    message: dict[str, Any]
    warnings: tuple[str, ...] = ()  # recipients who are not participants of the conversation


@dataclass(frozen=True)
class Refused:
    """Why nothing was sent: `step` names the guard step (the route maps it to a status), `reason` says why."""

    step: str
    reason: str
    addresses: tuple[str, ...] = ()  # the recipients the refusal is about (suppressed ones)


Outcome = Sent | Refused


@dataclass
class Outgoing:
    """What the steps learn about one reply as they go."""

    conversation: dict[str, Any]
    request: ReplyRequest
    stream: dict[str, Any] | None = None
    content: ReplyContent | None = None
    existing: dict[str, Any] | None = None
    attachments: list[tuple[dict[str, Any], bytes]] = field(default_factory=list)  # (record, bytes)


Step = Callable[[AsyncDatabase, Outgoing], Awaitable[str | None]]


async def stream_exists(db: AsyncDatabase, out: Outgoing) -> str | None:
    out.stream = await streams_repo.get_stream(db, out.conversation["account_id"], out.conversation["stream_id"])
    return None if out.stream is not None else "the conversation's stream was deleted: replies cannot be sent from it"


async def not_sent_yet(db: AsyncDatabase, out: Outgoing) -> str | None:
    """A reply stored before (same dedup key) is finished, not refused: see `send_reply`."""
    assert out.stream is not None
    if out.request.dedup_key:
        out.existing = await messages_repo.find_by_dedup_key(db, out.stream["_id"], out.request.dedup_key)
    return None


async def agents_may_send(db: AsyncDatabase, out: Outgoing) -> str | None:
    assert out.stream is not None
    return None if out.stream.get("allow_agent_send") else "this stream does not allow agents to send (monitoring only)"


async def has_customer_address(db: AsyncDatabase, out: Outgoing) -> str | None:
    if (out.conversation.get("customer") or {}).get("address"):
        return None
    return "the conversation has no customer address to reply to"


async def answers_a_person(db: AsyncDatabase, out: Outgoing) -> str | None:
    """Automatic replies only: never to another robot's mail (RFC 3834 section 2)."""
    if out.request.kind != "auto_reply":
        return None
    return auto_reply_refusal(out.request.trigger_headers, (out.conversation.get("customer") or {}).get("address", ""))


async def canned_response_exists(db: AsyncDatabase, out: Outgoing) -> str | None:
    if not out.request.canned_response_id:
        out.content = out.request.content
        return None
    canned = await canned_repo.get(db, out.conversation["account_id"], out.request.canned_response_id)
    if canned is None:
        return "no such canned response"
    out.content = ReplyContent(canned_text=canned["text"], canned_html=canned.get("html"))
    return None


STEPS: tuple[tuple[str, Step], ...] = (
    ("stream_exists", stream_exists),
    ("not_sent_yet", not_sent_yet),
    ("agents_may_send", agents_may_send),
    ("has_customer_address", has_customer_address),
    ("answers_a_person", answers_a_person),
    ("canned_response_exists", canned_response_exists),
    ("attachments_exist", reply_attachments.attachments_exist),
)


class CheckSuppressed(Protocol):
    """Which of the addresses the account has suppressed (`suppression_lookup.SuppressionLookup.check`)."""

    async def __call__(self, account_id: str, addresses: list[str]) -> SuppressionAnswer: ...


async def send_reply(
    db: AsyncDatabase,
    broker: Broker,
    conversation: dict[str, Any],
    request: ReplyRequest,
    *,
    inbound_domain: str,
    check_suppressed: CheckSuppressed | None = None,
) -> Outcome:
    out = Outgoing(conversation=conversation, request=request)
    for name, step in STEPS:
        reason = await step(db, out)
        if reason is not None:
            return Refused(name, reason)
        if out.existing is not None and out.stream is not None:
            await complete(db, broker, out.existing, out.stream["topic_id"])
            return Sent(out.existing)
    assert out.stream is not None and out.content is not None
    stream = out.stream
    agent_name = request.agent_name if request.agent_name is not None else stream.get("display_name", "")
    context = await reply_context(db, conversation, stream, agent_name=agent_name, cc=list(request.cc or ()))
    recipients, warnings = await choose_recipients(db, conversation, stream, request)
    if not recipients.to:
        return Refused("has_recipients", "a reply needs at least one `to` recipient")
    if check_suppressed is not None:
        answer = await check_suppressed(conversation["account_id"], recipients.addresses())
        if request.on_suppressed == "refuse":
            if answer.suppressed:
                listed = "; ".join(f"{a} ({why})" for a, why in answer.suppressed.items())
                return Refused(
                    "recipients_not_suppressed", f"on the suppression list: {listed}", tuple(answer.suppressed)
                )
            if answer.unknown:  # refusing was asked for: not knowing is no "not suppressed"
                return Refused("suppressions_checked", "the suppression list could not be checked", answer.unknown)
        warnings.extend(suppression_warnings(answer))
    token = await conversations_repo.ensure_reply_token(db, conversation["_id"], reply_tokens.new_token())
    context = dataclasses.replace(
        context,
        to=[Address.model_validate(a) for a in recipients.to],
        cc=[Address.model_validate(a) for a in recipients.cc],
        bcc=[Address.model_validate(a) for a in recipients.bcc],
        reply_token=token,
        reply_to=Address(
            name=stream.get("display_name", ""),
            address=reply_tokens.reply_address(stream["forwarding_address"], token),
        )
        if stream.get("forwarding_address")
        else None,
    )
    template = await effective_template(db, conversation["account_id"], stream) if request.apply_template else None
    built = build_reply(
        context,
        out.content,
        template=template,
        signature=stream.get("signature"),
        inbound_domain=inbound_domain,
        requested_by=request.requested_by,
        kind=request.kind,
        now=utcnow(),
        dedup_key=request.dedup_key,
        extra_headers=AUTO_REPLY_HEADERS if request.kind == "auto_reply" else None,
    )
    built = reply_attachments.with_attachments(built, out.attachments)
    if request.send_at is not None and request.send_at > utcnow():
        built.message["schedule"] = new_schedule(request.send_at, utcnow())
    stored, _ = await store_outbound(db, built)
    if (stored.get("schedule") or {}).get("state") == "held":
        await scheduled_send.arm(db, broker, stored, request.requested_by)
        return Sent(stored, tuple(warnings))
    try:
        await finish(db, broker, stored, stream["topic_id"])
    except Exception:
        if request.dedup_key is None:
            await messages_repo.mark_failed_to_queue(
                db, stored["_id"], "not queued: the message broker was unavailable"
            )
        raise
    return Sent(stored, tuple(warnings))


def suppression_warnings(answer: SuppressionAnswer) -> list[str]:
    """One warning per suppressed recipient (an address that could not be checked is only logged: the sender
    still refuses it if it is suppressed, and the reply's delivery timeline then says so)."""
    return [
        f"{address} is on the suppression list ({why}): the sender will not send this reply"
        for address, why in answer.suppressed.items()
    ]


async def choose_recipients(
    db: AsyncDatabase, conversation: dict[str, Any], stream: dict[str, Any], request: ReplyRequest
) -> tuple[people.Recipients, list[str]]:
    """Whom the reply goes to (`participants.py`) and a warning per address that is not a participant."""
    customer = conversation.get("customer") or {}
    own = people.own_addresses_of(stream)
    latest = (
        await messages_repo.addresses_of(db, conversation.get("last_inbound_message_id")) if request.reply_all else None
    )
    defaults = (
        people.default_recipients(customer, latest, own)
        if request.reply_all
        else people.Recipients(to=[{"name": customer.get("name", ""), "address": customer.get("address", "")}])
    )
    chosen = people.choose_recipients(
        defaults,
        to=None if request.to is None else [a.model_dump() for a in request.to],
        cc=None if request.cc is None else [a.model_dump() for a in request.cc],
        bcc=None if request.bcc is None else [a.model_dump() for a in request.bcc],
    )
    known = [*conversation.get("participants", []), *defaults.addresses()]
    return chosen, people.recipient_warnings(chosen, known, customer.get("address", ""))


async def finish(db: AsyncDatabase, broker: Broker, stored: dict[str, Any], topic_id: str) -> None:
    """Publish the stored request unless that was confirmed already; announce it if this call published it."""
    if await publish_pending_reply(db, broker, stored):
        await announce(broker, stored, topic_id)


async def complete_interrupted(db: AsyncDatabase, broker: Broker, conversation: dict[str, Any], dedup_key: str) -> None:
    """Finish a reply stored before under `dedup_key` (its publish may have been interrupted); never build one."""
    out = Outgoing(conversation=conversation, request=ReplyRequest(requested_by="", dedup_key=dedup_key))
    if await stream_exists(db, out) is None:
        await not_sent_yet(db, out)
    if out.existing is not None and out.stream is not None:
        await complete(db, broker, out.existing, out.stream["topic_id"])


async def complete(db: AsyncDatabase, broker: Broker, stored: dict[str, Any], topic_id: str) -> None:
    """A stored reply's remaining steps, each safe to repeat: fold it into its conversation, publish, announce."""
    await fold_into_conversation(db, stored)
    await finish(db, broker, stored, topic_id)


async def store_outbound(db: AsyncDatabase, reply: OutboundReply) -> tuple[dict[str, Any], bool]:
    """Store the message once (by its dedup key) and fold it into its conversation; (stored, created)."""
    document = {**reply.message, "pending_event": reply.event.model_dump(mode="json", by_alias=True)}
    if (reply.message.get("schedule") or {}).get("state") != "held":  # a held one leaves by its wake-up instead
        document[messages_repo.PENDING_SINCE] = reply.message["created_at"]  # the reply relay's handle on it
    stored, created = await messages_repo.insert(db, document)
    await fold_into_conversation(db, stored)
    return stored, created


async def fold_into_conversation(db: AsyncDatabase, stored: dict[str, Any]) -> None:
    """Count the message, move last activity, and make its Message-ID a thread key (idempotent)."""
    await conversations_repo.record_message(
        db,
        stored["conversation_id"],
        message_id=stored["_id"],
        message_at=stored["created_at"],
        terms=[],
        inbound=False,
    )


async def effective_template(db: AsyncDatabase, account_id: str, stream: dict[str, Any]) -> EmailTemplate:
    """The stream's own template (a brand) if it has one, else the account's, else the built-in default."""
    override = stream.get("template")
    if override and override.get("html") and override.get("text"):
        return EmailTemplate(html=override["html"], text=override["text"])
    doc = await templates_repo.get(db, account_id)
    if doc is not None:
        return EmailTemplate(html=doc["html"], text=doc["text"])
    return DEFAULT_TEMPLATE


async def reply_context(
    db: AsyncDatabase,
    conversation: dict[str, Any],
    stream: dict[str, Any],
    *,
    agent_name: str,
    cc: list[Address] | None = None,
) -> ReplyContext:
    last = await messages_repo.thread_headers_of(db, conversation.get("last_inbound_message_id"))
    customer = conversation.get("customer") or {}
    return ReplyContext(
        account_id=conversation["account_id"],
        conversation_id=conversation["_id"],
        conversation_subject=conversation.get("subject", ""),
        customer=Address(name=customer.get("name", ""), address=customer.get("address", "")),
        stream_id=stream["_id"],
        stream_address=stream["address"],
        stream_display_name=stream.get("display_name", ""),
        agent_name=agent_name,
        last_inbound_message_id=last.get("message_id_header") if last else None,
        last_inbound_references=(last.get("references") or []) if last else [],
        cc=cc or [],
    )


def outbound_stored_event(stored: dict[str, Any], topic_id: str) -> MessageStored:
    """`MessageStored` for an outbound message: live updates show it; automation ignores outbound messages."""
    return MessageStored(
        account_id=stored["account_id"],
        topic_id=topic_id,
        stream_id=stored["stream_id"],
        conversation_id=stored["conversation_id"],
        message_id=stored["_id"],
        direction="outbound",
        is_first_message=False,
        from_=Address.model_validate(stored["from"]),
        to=[Address.model_validate(a) for a in stored.get("to", [])],
        cc=[Address.model_validate(a) for a in stored.get("cc", [])],
        subject=stored.get("subject", ""),
        text=(stored.get("text") or "")[:EVENT_TEXT_CHARS],
        received_at=stored["created_at"],
    )


async def announce(broker: Broker, stored: dict[str, Any], topic_id: str) -> None:
    """Best effort: the reply is queued either way; a lost live update is fixed by the client's next fetch."""
    try:
        await broker.publish(outbound_stored_event(stored, topic_id))
    except Exception:
        log.warning("could not announce the outbound message", extra={"message_id": stored["_id"]}, exc_info=True)
