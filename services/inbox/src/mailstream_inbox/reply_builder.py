"""Build an outbound reply: the message document inbox stores as 'queued' and the `ReplyRequested` sent to sender.

Pure: the route (agent replies) and the actions consumer (automation's auto_reply) fetch the conversation, its
stream, the last inbound message, the canned response and the effective template, then call `build_reply`.

- To: the conversation's customer (for forwarded mail, the recovered original sender, never the forwarder), or
  the recipients the use case chose (`participants.py`: reply-all by default, or what the agent named); Cc/Bcc
  likewise (Bcc goes to the envelope only).
- Message-ID and Reply-To carry the conversation's reply token when it has one (`reply_tokens.py`).
- Subject: `Re: <conversation subject>` without stacking prefixes.
- In-Reply-To / References: from the last inbound message, so the customer's client threads it, and our own new
  Message-ID `<uuidhex@<inbound domain>>` becomes a thread key of the conversation so the answer comes back to it.
- Content: the agent's text/html, or the canned response with its placeholders filled; then the stream signature.
- Template: the effective template (stream override or account template) with its placeholders already filled and
  only `{{ content }}` left for sender; None when `apply_template` is false.
"""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from mailstream_common.contracts import Address, EmailTemplate, ReplyRequested

from . import placeholders
from .conversation_threading import normalize_message_id, reply_subject
from .html_sanitizer import html_to_text, sanitize_html, text_to_html
from .reply_tokens import message_id_with_token
from .repositories.messages import message_id_for

MAX_REFERENCES = 20

DEFAULT_TEMPLATE = EmailTemplate(
    html=(
        "<!DOCTYPE html>\n<html><body>\n"
        '<div style="font-family: Arial, Helvetica, sans-serif; font-size: 14px; line-height: 1.5; color: #222222">\n'
        "{{ content }}\n</div>\n</body></html>\n"
    ),
    text="{{ content }}\n",
)


@dataclass(frozen=True)
class ReplyContent:
    """What is said: either the agent's own text/html or a canned response (rendered with placeholders)."""

    text: str | None = None
    html: str | None = None
    canned_text: str | None = None
    canned_html: str | None = None


@dataclass(frozen=True)
class ReplyContext:
    """Who talks to whom, and where in the thread."""

    account_id: str
    conversation_id: str
    conversation_subject: str
    customer: Address
    stream_id: str
    stream_address: str
    stream_display_name: str
    agent_name: str
    last_inbound_message_id: str | None
    last_inbound_references: Sequence[str] = ()
    cc: Sequence[Address] = ()
    to: Sequence[Address] = ()  # empty: the customer
    bcc: Sequence[Address] = ()
    reply_token: str | None = None
    reply_to: Address | None = None


@dataclass(frozen=True)
class OutboundReply:
    message: dict[str, Any]
    event: ReplyRequested
    extra: dict[str, Any] = field(default_factory=dict)


def new_message_id_header(inbound_domain: str) -> str:
    return f"<{uuid.uuid4().hex}@{inbound_domain.lower()}>"


def placeholder_context(context: ReplyContext) -> placeholders.PlaceholderContext:
    return placeholders.PlaceholderContext(
        customer_name=context.customer.name,
        customer_address=context.customer.address,
        agent_name=context.agent_name,
        conversation_subject=context.conversation_subject,
        stream_address=context.stream_address,
        stream_name=context.stream_display_name,
    )


def thread_headers(last_inbound_id: str | None, last_references: Sequence[str]) -> tuple[str | None, list[str]]:
    """In-Reply-To and References (RFC 5322 3.6.4): the parent's References plus the parent, the newest kept."""
    parent = normalize_message_id(last_inbound_id)
    references: list[str] = []
    for value in [*last_references, parent]:
        normalized = normalize_message_id(value)
        if normalized and normalized not in references:
            references.append(normalized)
    if len(references) > MAX_REFERENCES:  # keep the thread root and the most recent ones
        references = [references[0], *references[-(MAX_REFERENCES - 1) :]]
    return parent, references


def render_content(content: ReplyContent, values: placeholders.PlaceholderContext) -> tuple[str, str | None]:
    """The reply body (text, html or None): the agent's own words as written, a canned response filled in."""
    if content.canned_text is not None or content.canned_html is not None:
        text = placeholders.fill(content.canned_text or "", values, "text")
        html = placeholders.fill(content.canned_html, values, "html") if content.canned_html else None
    else:
        text = content.text or ""
        html = content.html
    if html is not None:
        html = sanitize_html(html, allow_remote_images=True).html
        if not text.strip():
            text = html_to_text(html)
    return text, html


def append_signature(text: str, html: str | None, signature: str | None) -> tuple[str, str | None]:
    """The stream's signature below the content, after the conventional '-- ' separator."""
    if not signature or not signature.strip():
        return text, html
    text = f"{text.rstrip()}\n\n-- \n{signature.strip()}\n"
    if html is not None:
        html = f'{html}\n<div class="mailstream-signature"><br>-- <br>\n{text_to_html(signature.strip())}</div>'
    return text, html


def build_reply(
    context: ReplyContext,
    content: ReplyContent,
    *,
    template: EmailTemplate | None,
    signature: str | None,
    inbound_domain: str,
    requested_by: str,
    kind: Literal["reply", "auto_reply"] = "reply",
    now: datetime,
    dedup_key: str | None = None,
    extra_headers: dict[str, str] | None = None,
) -> OutboundReply:
    values = placeholder_context(context)
    text, html = render_content(content, values)
    text, html = append_signature(text, html, placeholders.fill(signature, values) if signature else None)
    message_id_header = (
        message_id_with_token(context.reply_token, inbound_domain)
        if context.reply_token
        else new_message_id_header(inbound_domain)
    )
    dedup_key = dedup_key or message_id_header
    message_id = message_id_for(context.stream_id, dedup_key)
    in_reply_to, references = thread_headers(context.last_inbound_message_id, context.last_inbound_references)
    sender = Address(name=context.stream_display_name, address=context.stream_address)
    # One line each, whatever was stored before inbound parsing removed decoded line breaks (the sender checks again).
    chosen = list(context.to) or [Address(name=context.customer.name, address=context.customer.address)]
    to = [Address(name=" ".join(a.name.split()), address=a.address) for a in chosen]
    subject = " ".join(reply_subject(context.conversation_subject).split())
    prefilled = placeholders.prefill_template(template, values) if template is not None else None

    event = ReplyRequested(
        kind=kind,
        account_id=context.account_id,
        stream_id=context.stream_id,
        conversation_id=context.conversation_id,
        message_id=message_id,
        message_id_header=message_id_header,
        from_=sender,
        to=to,
        cc=list(context.cc),
        bcc=list(context.bcc),
        reply_to=[context.reply_to] if context.reply_to else [],
        subject=subject,
        in_reply_to=in_reply_to,
        references=references,
        text=text,
        html=html,
        template=prefilled,
        template_context=values.as_flat_strings(),
        extra_headers=dict(extra_headers or {}),
        requested_by=requested_by,
    )
    message = {
        "_id": message_id,
        "account_id": context.account_id,
        "conversation_id": context.conversation_id,
        "stream_id": context.stream_id,
        "direction": "outbound",
        "kind": kind,
        "from": sender.model_dump(),
        "to": [a.model_dump() for a in to],
        "cc": [a.model_dump() for a in context.cc],
        "bcc": [a.model_dump() for a in context.bcc],
        "reply_to": [context.reply_to.model_dump()] if context.reply_to else [],
        "subject": subject,
        "text": text,
        "html": html,
        "headers": [],
        "attachments": [],
        "message_id_header": message_id_header,
        "in_reply_to": [in_reply_to] if in_reply_to else [],
        "references": references,
        "authentication": None,
        "forwarded": None,
        "delivery": {"status": "queued", "detail": "", "updated_at": now, "attempt": 0, "version": 0},
        "raw_blob_id": None,
        "dedup_key": dedup_key,
        "requested_by": requested_by,
        "template_applied": prefilled is not None,
        "created_at": now,
        "parse_warnings": [],
        "published": False,
    }
    return OutboundReply(message=message, event=event)


AUTO_REPLY_HEADERS = {"Auto-Submitted": "auto-replied", "X-Auto-Response-Suppress": "All"}
_BULK_PRECEDENCE = {"bulk", "junk", "list"}


def auto_reply_refusal(headers: Sequence[dict[str, str]], customer_address: str) -> str | None:
    """Why an automatic reply must not be sent to this mail (RFC 3834 section 2), or None.

    Answering another robot's mail (auto-replies, bounces, mailing lists, bulk mail) is how mail loops start.
    """
    if not customer_address:
        return "no customer address to reply to"
    local = customer_address.split("@", 1)[0].lower()
    if local in {"mailer-daemon", "postmaster"} or local.startswith(("no-reply", "noreply", "do-not-reply")):
        return f"{customer_address} does not take replies"
    for header in headers:
        name = header.get("name", "").lower()
        value = header.get("value", "").strip().lower()
        if name == "auto-submitted" and value and value != "no":
            return f"the mail is automatic (Auto-Submitted: {value})"
        if name == "precedence" and value in _BULK_PRECEDENCE:
            return f"the mail is bulk (Precedence: {value})"
        if name in {"list-id", "list-unsubscribe"}:
            return "the mail came from a mailing list"
        if name == "x-auto-response-suppress" and ("all" in value or "autoreply" in value or "oof" in value):
            return "the sender asked for no automatic replies"
    return None
