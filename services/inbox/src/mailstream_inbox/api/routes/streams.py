"""Email streams: a customer-facing address, the forwarding address that feeds it, and its set-up state.

Every create/update/delete publishes `stream.changed` (`mailstream_inbox.catalogue`: versioned, and republished by
the relay if the broker does not confirm) so that ingest's, sender's and automation's projections follow at once (a
deleted stream's forwarding address is then refused at RCPT time). `verify-forwarding` asks sender to mail a test
message to the customer-facing address; when the customer's forwarding rule brings it back through ingest, the store
consumer calls `repositories.streams.mark_forwarding_verified` and the stream shows how it arrived.
"""

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator

from mailstream_common.contracts import Address, ReplyRequested
from mailstream_common.contracts.forwarding_check import (
    FORWARDING_TEST_HEADER,
    FORWARDING_TEST_SENDER_NAME,
    FORWARDING_TEST_SUBJECT,
    forwarding_test_text,
)
from mailstream_common.pages import (
    DEFAULT_LIMIT,
    CursorParam,
    LimitParam,
    Page,
    decode_optional_cursor,
    encode_optional_cursor,
)

from ... import catalogue
from ...forwarding_instructions import OUTLOOK_REASON, provider_instructions
from ...payload_types import EmailAddressStr, HeaderSafeStr
from ...repositories import streams as streams_repo
from ...repositories import topics as topics_repo
from ..deps import AdminPrincipal, BrokerDep, CurrentPrincipal, Db, Principal, SettingsDep
from ..errors import COMMON_RESPONSES, NOT_FOUND_RESPONSE, conflict, not_found

router = APIRouter(tags=["topics and streams"], responses=COMMON_RESPONSES)

StreamId = Annotated[str, Path(max_length=64)]
TopicId = Annotated[str, Path(max_length=64)]
DisplayName = Annotated[HeaderSafeStr, Field(max_length=200)]

PUBLISH_FAILED = {503: {"description": "Saved, but the broker did not confirm the change event; retry"}}


class StreamTemplate(BaseModel):
    """A per-stream (brand) override of the account email template; each part must contain `{{ content }}`."""

    model_config = ConfigDict(extra="forbid")
    html: str = Field(max_length=200_000)
    text: str = Field(max_length=50_000)

    @model_validator(mode="after")
    def _has_content_placeholder(self) -> "StreamTemplate":
        for part in ("html", "text"):
            if "{{ content }}" not in getattr(self, part).replace("{{content}}", "{{ content }}"):
                raise ValueError(f"{part} must contain {{{{ content }}}}")
        return self


class StreamCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"address": "support@acme.com", "allow_agent_send": True, "display_name": "Acme Support"}]
        },
    )
    address: EmailAddressStr = Field(description="The address customers write to and agents reply from")
    allow_agent_send: bool = Field(default=True, description="False: the stream only tracks incoming mail")
    display_name: DisplayName = Field(default="", description="Sender name on replies, e.g. 'Acme Support'")
    template: StreamTemplate | None = None
    signature: str | None = Field(default=None, max_length=10_000)


class StreamUpdate(BaseModel):
    """Only the fields present change; `template` and `signature` may be set to null to remove the override."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"allow_agent_send": False}]})
    address: EmailAddressStr | None = None
    allow_agent_send: bool | None = None
    display_name: DisplayName | None = None
    template: StreamTemplate | None = None
    signature: str | None = Field(default=None, max_length=10_000)

    @model_validator(mode="after")
    def _no_null_for_required(self) -> "StreamUpdate":
        for name in ("address", "allow_agent_send", "display_name"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self


class ProviderConfirmationPublic(BaseModel):
    provider: str
    code: str | None = None
    link: str | None = None
    requested_by: str | None = None
    received_at: datetime | None = None


class ForwardingCheck(BaseModel):
    pending: bool = Field(description="A test mail was sent and has not come back yet")
    requested_at: datetime | None = None
    verified: bool
    verified_at: datetime | None = None
    method: Literal["redirect", "forward_inline", "forward_attached", "direct"] | None = Field(
        default=None, description="How the test mail arrived; 'forward_*' means the rule forwards instead of redirects"
    )
    advice: str | None = None


class StreamPublic(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "7d0e4f3b2a1c4d5e9f8a7b6c5d4e3f21",
                    "topic_id": "3f1c2b7a9e0d4c6b8a5f4e3d2c1b0a99",
                    "address": "support@acme.com",
                    "display_name": "Acme Support",
                    "allow_agent_send": True,
                    "forwarding_address": "s-mfrggzdfmztwq2lknnwg23tpobyxe@in.mailstream.test",
                    "status": "awaiting_mail",
                    "setup": {
                        "forwarding_address": "s-mfrggzdfmztwq2lknnwg23tpobyxe@in.mailstream.test",
                        "providers": [],
                    },
                    "provider_confirmation": None,
                    "forwarding_verified": False,
                    "forwarding_check": {"pending": False, "verified": False},
                    "template": None,
                    "signature": None,
                    "created_at": "2026-11-27T01:00:00Z",
                    "first_mail_at": None,
                }
            ]
        }
    )

    id: str
    topic_id: str
    address: str
    display_name: str
    allow_agent_send: bool
    forwarding_address: str
    status: str = Field(description="'awaiting_mail' until the first mail arrives, then 'receiving'")
    setup: dict[str, Any]
    provider_confirmation: ProviderConfirmationPublic | None
    forwarding_verified: bool
    forwarding_check: ForwardingCheck
    template: StreamTemplate | None = None
    signature: str | None = None
    created_at: datetime
    first_mail_at: datetime | None = None


class ForwardingCheckRequested(BaseModel):
    stream_id: str
    status: Literal["pending"] = "pending"
    sent_to: str
    requested_at: datetime | None


def to_public(doc: dict) -> StreamPublic:
    method = doc.get("forwarding_method")
    advice = None
    if method in ("forward_inline", "forward_attached"):
        advice = "The test mail arrived forwarded, not redirected. " + OUTLOOK_REASON
    return StreamPublic(
        id=doc["_id"],
        topic_id=doc["topic_id"],
        address=doc["address"],
        display_name=doc.get("display_name", ""),
        allow_agent_send=doc["allow_agent_send"],
        forwarding_address=doc["forwarding_address"],
        status=doc.get("status", "awaiting_mail"),
        setup=provider_instructions(doc["address"], doc["forwarding_address"]),
        provider_confirmation=doc.get("provider_confirmation"),
        forwarding_verified=bool(doc.get("forwarding_verified")),
        forwarding_check=ForwardingCheck(
            pending=bool(doc.get("forwarding_check_token")),
            requested_at=doc.get("forwarding_check_requested_at"),
            verified=bool(doc.get("forwarding_verified")),
            verified_at=doc.get("forwarding_verified_at"),
            method=method,
            advice=advice,
        ),
        template=doc.get("template"),
        signature=doc.get("signature"),
        created_at=doc["created_at"],
        first_mail_at=doc.get("first_mail_at"),
    )


async def publish_change(db, broker, change: Literal["created", "updated", "deleted"], doc: dict) -> None:
    await catalogue.publish_change(db, broker, "stream", doc, change)


@router.post(
    "/v1/topics/{topic_id}/streams",
    status_code=201,
    response_model=StreamPublic,
    responses={**NOT_FOUND_RESPONSE, 409: {"description": "A live stream already has this address"}},
    summary="Create an email stream (admin): returns its forwarding address and provider set-up",
)
async def create_stream(
    topic_id: TopicId, body: StreamCreate, principal: AdminPrincipal, db: Db, broker: BrokerDep, settings: SettingsDep
) -> StreamPublic:
    if await topics_repo.get_topic(db, principal.account_id, topic_id) is None:
        raise not_found("topic")
    if await streams_repo.find_live_stream_with_address(db, principal.account_id, body.address):
        raise conflict(f"a stream for {body.address.lower()} already exists in this account")
    doc = await streams_repo.create_stream(
        db,
        account_id=principal.account_id,
        topic_id=topic_id,
        address=body.address,
        allow_agent_send=body.allow_agent_send,
        display_name=body.display_name,
        inbound_domain=settings.inbound_domain,
    )
    if body.template is not None or body.signature is not None:
        extra = {"template": body.template.model_dump() if body.template else None, "signature": body.signature}
        doc = await streams_repo.update_stream(db, principal.account_id, doc["_id"], extra) or doc
    await publish_change(db, broker, "created", doc)
    return to_public(doc)


@router.get("/v1/streams", response_model=Page[StreamPublic])
async def list_streams(
    principal: CurrentPrincipal,
    db: Db,
    topic_id: Annotated[str | None, Query(max_length=64)] = None,
    limit: LimitParam = DEFAULT_LIMIT,
    cursor: CursorParam = None,
) -> Page[StreamPublic]:
    docs, next_values = await streams_repo.list_streams(
        db, principal.account_id, topic_id=topic_id, limit=limit, after=decode_optional_cursor(cursor)
    )
    return Page(items=[to_public(d) for d in docs], next_cursor=encode_optional_cursor(next_values))


@router.get("/v1/topics/{topic_id}/streams", response_model=Page[StreamPublic], responses=NOT_FOUND_RESPONSE)
async def list_topic_streams(
    topic_id: TopicId,
    principal: CurrentPrincipal,
    db: Db,
    limit: LimitParam = DEFAULT_LIMIT,
    cursor: CursorParam = None,
) -> Page[StreamPublic]:
    if await topics_repo.get_topic(db, principal.account_id, topic_id) is None:
        raise not_found("topic")
    return await list_streams(principal, db, topic_id=topic_id, limit=limit, cursor=cursor)


@router.get("/v1/streams/{stream_id}", response_model=StreamPublic, responses=NOT_FOUND_RESPONSE)
async def get_stream(stream_id: StreamId, principal: CurrentPrincipal, db: Db) -> StreamPublic:
    doc = await streams_repo.get_stream(db, principal.account_id, stream_id)
    if doc is None:
        raise not_found("stream")
    return to_public(doc)


@router.patch(
    "/v1/streams/{stream_id}",
    response_model=StreamPublic,
    responses={**NOT_FOUND_RESPONSE, 409: {"description": "A live stream already has this address"}},
)
async def update_stream(
    stream_id: StreamId, body: StreamUpdate, principal: AdminPrincipal, db: Db, broker: BrokerDep
) -> StreamPublic:
    if await streams_repo.get_stream(db, principal.account_id, stream_id) is None:
        raise not_found("stream")
    changes = body.model_dump(include=body.model_fields_set)
    if "address" in changes and await streams_repo.find_live_stream_with_address(
        db, principal.account_id, changes["address"], excluding=stream_id
    ):
        raise conflict(f"a stream for {changes['address'].lower()} already exists in this account")
    doc = await streams_repo.update_stream(db, principal.account_id, stream_id, changes)
    if doc is None:
        raise not_found("stream")
    await publish_change(db, broker, "updated", doc)
    return to_public(doc)


@router.delete(
    "/v1/streams/{stream_id}",
    status_code=204,
    responses=NOT_FOUND_RESPONSE,
    summary="Delete a stream (admin): its forwarding address then refuses mail",
)
async def delete_stream(stream_id: StreamId, principal: AdminPrincipal, db: Db, broker: BrokerDep) -> Response:
    doc = await streams_repo.delete_stream(db, principal.account_id, stream_id)
    if doc is None:
        raise not_found("stream")
    await publish_change(db, broker, "deleted", doc)
    return Response(status_code=204)


def forwarding_test_request(stream: dict, token: str, inbound_domain: str, principal: Principal) -> ReplyRequested:
    """The test mail: to the customer-facing address, so it comes back only through the forwarding rule."""
    message_id = uuid.uuid4().hex
    return ReplyRequested(
        kind="forwarding_test",
        account_id=stream["account_id"],
        stream_id=stream["_id"],
        message_id=message_id,
        message_id_header=f"<{message_id}@{inbound_domain}>",
        **{"from": Address(name=FORWARDING_TEST_SENDER_NAME, address=f"forwarding-check@{inbound_domain}")},
        to=[Address(address=stream["address"])],
        subject=FORWARDING_TEST_SUBJECT,
        text=forwarding_test_text(stream["address"], token),
        extra_headers={FORWARDING_TEST_HEADER: token},
        requested_by=principal.actor,
    )


@router.post(
    "/v1/streams/{stream_id}/verify-forwarding",
    status_code=202,
    response_model=ForwardingCheckRequested,
    responses={**NOT_FOUND_RESPONSE, **PUBLISH_FAILED},
    summary="Send a test mail through the forwarding rule (admin); the stream shows the result",
)
async def verify_forwarding(
    stream_id: StreamId, principal: AdminPrincipal, db: Db, broker: BrokerDep, settings: SettingsDep
) -> ForwardingCheckRequested:
    token = await streams_repo.start_forwarding_check(db, principal.account_id, stream_id)
    stream = await streams_repo.get_stream(db, principal.account_id, stream_id)
    if token is None or stream is None:
        raise not_found("stream")
    await broker.publish(forwarding_test_request(stream, token, settings.inbound_domain, principal))
    return ForwardingCheckRequested(
        stream_id=stream_id, sent_to=stream["address"], requested_at=stream.get("forwarding_check_requested_at")
    )
