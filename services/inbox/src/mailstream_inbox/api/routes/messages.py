"""Messages: one message with its headers, its exact raw bytes, and attachment downloads.

Downloads are served as attachments with `nosniff` and a sandboxing CSP, so an HTML or SVG file a customer sent
can never run as a page of the API's origin.
"""

from datetime import datetime
from typing import Annotated, Literal
from urllib.parse import quote

from fastapi import APIRouter, Path, Response
from pydantic import BaseModel, ConfigDict, Field
from pymongo.asynchronous.database import AsyncDatabase

from mailstream_common.contracts.delivery import DeliveryTimelineEntry

from ...delivery_timeline import timeline_of
from ...repositories import blobs as blobs_repo
from ...repositories import messages as messages_repo
from ...repositories import uploads as uploads_repo
from ...use_cases import retry_delivery
from ..deps import BrokerDep, CurrentPrincipal, Db
from ..errors import COMMON_RESPONSES, NOT_FOUND_RESPONSE, conflict, not_found

router = APIRouter(tags=["messages"], responses=COMMON_RESPONSES)

MessageId = Annotated[str, Path(max_length=64)]
AttachmentId = Annotated[str, Path(max_length=64)]
DOWNLOAD_HEADERS = {"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "sandbox; default-src 'none'"}


class AddressOut(BaseModel):
    name: str = ""
    address: str


class AttachmentOmitted(BaseModel):
    reason: Literal["too_large"] = Field(description="Why its bytes are not kept apart (the raw message has them)")
    detail: str = ""


class AttachmentPublic(BaseModel):
    id: str
    filename: str
    content_type: str
    size: int
    inline: bool = False
    content_id: str | None = None
    omitted: AttachmentOmitted | None = Field(
        default=None,
        description="Set when the attachment is over the account's limit: listed, downloadable only inside"
        " `GET /v1/messages/{id}/raw`",
        examples=[{"reason": "too_large", "detail": "31457280 bytes is over the account's limit of 8388608 bytes"}],
    )


class AuthenticationPublic(BaseModel):
    spf: str = "none"
    dkim: str = "none"
    dmarc: str = "none"


class ForwardedPublic(BaseModel):
    by: AddressOut | None = None
    original_from: AddressOut
    method: str | None = None
    note: str | None = Field(
        default=None,
        description="Forwarded as an attachment: what the forwarder wrote above it (the message's `text` is the "
        "customer's, from the attached message)",
    )


_TIMELINE_EXAMPLE = [
    {"type": "queued", "at": "2026-11-27T09:40:00Z"},
    {"type": "attempt", "at": "2026-11-27T09:40:01Z", "attempt": 1, "smtp_code": 451, "reply": "451 4.3.2 try later"},
    {"type": "deferred", "at": "2026-11-27T09:40:01Z", "next_attempt_at": "2026-11-27T09:40:31Z"},
    {"type": "attempt", "at": "2026-11-27T09:40:31Z", "attempt": 2, "smtp_code": 250, "reply": "250 2.0.0 Ok"},
    {"type": "sent", "at": "2026-11-27T09:40:31Z", "relay_queue_id": "4F2A1C0123"},
    {
        "type": "bounced",
        "at": "2026-11-27T09:41:10Z",
        "bounce": {"kind": "hard", "status": "5.1.1", "smtp_code": 550, "diagnostic": "550 5.1.1 User unknown"},
    },
]


class DeliveryPublic(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "status": "failed",
                    "detail": "bounced: 550 5.1.1 User unknown",
                    "updated_at": "2026-11-27T09:41:10Z",
                    "retry_round": 0,
                    "timeline": _TIMELINE_EXAMPLE,
                },
                {
                    "status": "failed",
                    "detail": "not sent: ann@example.net is on the suppression list (3 hard bounces)",
                    "updated_at": "2026-11-27T09:40:01Z",
                    "retry_round": 0,
                    "timeline": [
                        {"type": "queued", "at": "2026-11-27T09:40:00Z"},
                        {"type": "failed", "at": "2026-11-27T09:40:01Z", "reason": "suppressed"},
                    ],
                },
            ]
        }
    )
    status: Literal["queued", "sent", "failed"]
    detail: str = ""
    updated_at: datetime | None = None
    retry_round: int = Field(default=0, description="How often it was retried through `POST .../retry`")
    timeline: list[DeliveryTimelineEntry] = Field(
        default_factory=list,
        description="Everything that happened on its way out, oldest first: queued, each attempt with the relay's "
        "reply, deferred (next attempt), sent (the relay's queue id), bounced (the parsed report), failed (why), "
        "retried",
    )


class SchedulePublic(BaseModel):
    send_at: datetime = Field(description="When the reply leaves (or left)")
    state: Literal["held", "sending", "sent"] = Field(description="held until send_at; cancellable only while held")


class HeaderOut(BaseModel):
    name: str
    value: str


_EXAMPLE = {
    "id": "8e7d6c5b4a39281706f5e4d3c2b1a09f",
    "conversation_id": "5f0c3c1e9d2b4a0f8e7d6c5b4a392817",
    "stream_id": "9f8e7d6c5b4a39281706f5e4d3c2b1a0",
    "direction": "inbound",
    "from": {"name": "Ann Customer", "address": "ann@example.net"},
    "to": [{"name": "", "address": "support@acme.com"}],
    "cc": [],
    "subject": "Where is my order #1234?",
    "text": "Hello, I ordered last week...",
    "html": '<p>Hello, I ordered last week...</p><img alt="logo">',
    "attachments": [
        {"id": "1b2c...", "filename": "invoice.pdf", "content_type": "application/pdf", "size": 48213},
        {
            "id": "1b2d...",
            "filename": "scan.tiff",
            "content_type": "image/tiff",
            "size": 31457280,
            "omitted": {"reason": "too_large", "detail": "31457280 bytes is over the account's limit of 8388608 bytes"},
        },
    ],
    "message_id_header": "<CAF1234@mail.example.net>",
    "in_reply_to": [],
    "references": [],
    "authentication": {"spf": "pass", "dkim": "pass", "dmarc": "pass"},
    "forwarded": {
        "by": {"name": "", "address": "support@acme.com"},
        "original_from": {"address": "ann@example.net"},
        "method": "forward_attached",
        "note": "See attached, please handle.",
    },
    "delivery": None,
    "thread_reason": "new",
    "bcc": [],
    "remote_images_blocked": 1,
    "parse_warnings": [],
    "created_at": "2026-11-27T09:30:00Z",
    "schedule": None,
    "imported": False,
}


_SCHEDULED_EXAMPLE = {
    **_EXAMPLE,
    "id": "9e7d6c5b4a39281706f5e4d3c2b1a09f",
    "direction": "outbound",
    "from": {"name": "Acme Support", "address": "support@acme.com"},
    "to": [{"name": "Ann Customer", "address": "ann@example.net"}],
    "subject": "Re: Where is my order #1234?",
    "text": "Good morning Ann, here is the update.",
    "html": None,
    "attachments": [],
    "message_id_header": "<0c1d2e3f@in.mailstream.example>",
    "authentication": None,
    "forwarded": None,
    "delivery": {"status": "queued", "detail": "", "updated_at": "2026-11-27T09:40:00Z"},
    "remote_images_blocked": 0,
    "created_at": "2026-11-27T09:40:00Z",
    "schedule": {"send_at": "2026-11-28T08:00:00Z", "state": "held"},
}


class MessagePublic(BaseModel):
    model_config = ConfigDict(populate_by_name=True, json_schema_extra={"examples": [_EXAMPLE, _SCHEDULED_EXAMPLE]})
    id: str
    conversation_id: str
    stream_id: str
    direction: Literal["inbound", "outbound"]
    from_: AddressOut | None = Field(alias="from")
    to: list[AddressOut]
    cc: list[AddressOut]
    subject: str
    text: str
    html: str | None = Field(description="Sanitised: no scripts, no event handlers, remote images removed")
    attachments: list[AttachmentPublic]
    message_id_header: str | None
    in_reply_to: list[str] = []
    references: list[str] = []
    authentication: AuthenticationPublic | None
    forwarded: ForwardedPublic | None
    delivery: DeliveryPublic | None
    remote_images_blocked: int = 0
    parse_warnings: list[str] = []
    created_at: datetime
    thread_reason: Literal["in_reply_to", "references", "reply_token", "subject_and_sender", "new"] | None = Field(
        default=None,
        description="Inbound: why it joined its conversation (the matching In-Reply-To or References header, the "
        "conversation token of our Message-ID/Reply-To, the same subject from the customer or a participant, or "
        "it opened a new one); null for outbound and for messages stored before this was recorded",
    )
    bcc: list[AddressOut] = Field(default_factory=list, description="Outbound: the blind copies (never in a header)")
    schedule: SchedulePublic | None = Field(
        default=None, description="Only on a scheduled reply (sent with `send_at`), e.g. {send_at, state: held}"
    )
    imported: bool = Field(default=False, description="Brought in by a history import (no automation ran on it)")


class MessageDetail(MessagePublic):
    headers: list[HeaderOut] = Field(description="Every header line in order (names may repeat)")


def _fields(doc: dict) -> dict:
    return {
        "id": doc["_id"],
        "conversation_id": doc["conversation_id"],
        "stream_id": doc["stream_id"],
        "direction": doc["direction"],
        "from": doc.get("from"),
        "to": doc.get("to", []),
        "cc": doc.get("cc", []),
        "subject": doc.get("subject", ""),
        "text": doc.get("text", ""),
        "html": doc.get("html"),
        "attachments": doc.get("attachments", []),
        "message_id_header": doc.get("message_id_header"),
        "in_reply_to": doc.get("in_reply_to", []),
        "references": doc.get("references", []),
        "authentication": doc.get("authentication"),
        "forwarded": doc.get("forwarded"),
        "delivery": delivery_fields(doc),
        "remote_images_blocked": doc.get("remote_images_blocked", 0),
        "parse_warnings": doc.get("parse_warnings", []),
        "created_at": doc["created_at"],
        "thread_reason": doc.get("thread_reason"),
        "bcc": doc.get("bcc", []),
        "schedule": doc.get("schedule"),
        "imported": bool(doc.get("imported")),
    }


def delivery_fields(doc: dict) -> dict | None:
    delivery = doc.get("delivery")
    if delivery is None:
        return None
    return {**delivery, "timeline": timeline_of(doc)}


def message_public(doc: dict) -> MessagePublic:
    return MessagePublic.model_validate(_fields(doc))


def message_detail(doc: dict) -> MessageDetail:
    return MessageDetail.model_validate({**_fields(doc), "headers": doc.get("headers", [])})


def content_disposition(filename: str) -> str:
    """RFC 6266: an ASCII fallback plus the UTF-8 name, with nothing that could break the header."""
    safe = "".join(c for c in filename if c.isprintable() and c not in '\\"\r\n') or "attachment"
    ascii_name = safe.encode("ascii", "replace").decode("ascii").replace("?", "_")
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(safe, safe='')}"


@router.get("/v1/messages/{message_id}", response_model=MessageDetail, responses=NOT_FOUND_RESPONSE)
async def get_message(message_id: MessageId, principal: CurrentPrincipal, db: Db) -> MessageDetail:
    doc = await messages_repo.get(db, principal.account_id, message_id)
    if doc is None:
        raise not_found("message")
    return message_detail(doc)


@router.get(
    "/v1/messages/{message_id}/raw",
    response_class=Response,
    responses={
        200: {"content": {"message/rfc822": {}}, "description": "The exact bytes received (or sent, once built)"},
        **NOT_FOUND_RESPONSE,
    },
)
async def get_raw(message_id: MessageId, principal: CurrentPrincipal, db: Db) -> Response:
    doc = await messages_repo.get(db, principal.account_id, message_id)
    if doc is None:
        raise not_found("message")
    if not doc.get("raw_blob_id"):
        raise not_found("raw message (an outbound message has one once sender built it)")
    return await _download(db, doc["raw_blob_id"], "message/rfc822", f"{message_id}.eml", "raw message")


@router.get(
    "/v1/attachments/{attachment_id}",
    response_class=Response,
    responses={
        200: {"content": {"*/*": {}}, "description": "The attachment, with its (stored or sniffed) content type"},
        **NOT_FOUND_RESPONSE,
    },
)
async def get_attachment(attachment_id: AttachmentId, principal: CurrentPrincipal, db: Db) -> Response:
    record = await messages_repo.find_attachment(db, principal.account_id, attachment_id)
    if record is None:
        record = await uploads_repo.get(db, principal.account_id, attachment_id)  # an agent's upload
        data = await uploads_repo.read(db, record) if record is not None else None
        if record is None or data is None:
            raise not_found("attachment")
        headers = {**DOWNLOAD_HEADERS, "Content-Disposition": content_disposition(record["filename"])}
        return Response(content=data, media_type=record["content_type"], headers=headers)
    if record.get("omitted"):
        raise not_found("attachment (omitted: it is in the raw message)")
    media_type = record.get("content_type") or "application/octet-stream"
    return await _download(db, record["sha256"], media_type, record.get("filename") or "attachment", "attachment")


async def _download(db: AsyncDatabase, blob_id: str, media_type: str, filename: str, what: str) -> Response:
    """A stored blob as a download; 404 naming `what` if its bytes are gone."""
    data = await blobs_repo.get(db, blob_id)
    if data is None:
        raise not_found(what)
    headers = {**DOWNLOAD_HEADERS, "Content-Disposition": content_disposition(filename)}
    return Response(content=data, media_type=media_type, headers=headers)


@router.get(
    "/v1/messages/{message_id}/delivery",
    response_model=DeliveryPublic,
    responses={404: {"description": "No such message in this account, or it is an inbound message"}},
    summary="An outbound message's delivery and its timeline",
)
async def get_delivery(message_id: MessageId, principal: CurrentPrincipal, db: Db) -> DeliveryPublic:
    doc = await messages_repo.get(db, principal.account_id, message_id)
    if doc is None:
        raise not_found("message")
    if doc.get("direction") != "outbound" or doc.get("delivery") is None:
        raise not_found("delivery (only outbound messages have one)")
    return DeliveryPublic.model_validate(delivery_fields(doc))


@router.post(
    "/v1/messages/{message_id}/retry",
    status_code=202,
    response_model=DeliveryPublic,
    responses={
        404: {"description": "No such message in this account"},
        409: {"description": "The message is not failed (queued, sent, bounced or changing): nothing to retry"},
    },
    summary="Send a failed message again",
)
async def retry_message(
    message_id: MessageId, principal: CurrentPrincipal, db: Db, broker: BrokerDep
) -> DeliveryPublic:
    """Queued again (202) in a new round: the sender sends the same mail (same Message-ID, the bytes it kept) once
    more. Two retries at once queue it once; the other gets 409, as does a message that is not failed."""
    outcome = await retry_delivery.retry(db, broker, principal.account_id, message_id, principal.actor)
    if outcome is None:
        raise not_found("message")
    if isinstance(outcome, str):
        raise conflict(outcome)
    return DeliveryPublic.model_validate(delivery_fields(outcome))
