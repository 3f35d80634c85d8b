"""Webhook subscriptions of an account (admin keys only: they send the account's data out of Mailstream), their
deliveries with every attempt, and a replay by hand.

The signing secret is shown once, in the answer to the create and to a rotation; it is stored encrypted
(`webhooks/signing.py`) and never returned again. The dispatcher (`python -m mailstream_inbox.webhooks`) does the
sending; these routes only write subscriptions and ask it, by a broker command, to attempt a replayed delivery.
"""

import ipaddress
import json
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from fastapi import APIRouter, Path, Request, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from mailstream_common.contracts import WebhookAttemptDue, utcnow
from mailstream_common.pages import (
    DEFAULT_LIMIT,
    CursorParam,
    LimitParam,
    Page,
    decode_optional_cursor,
    encode_optional_cursor,
)

from ...webhooks import payloads
from ...webhooks import repositories as webhooks_repo
from ...webhooks.destinations import DestinationRefused, check_url, refusal_of_address
from ...webhooks.signing import SecretBox, new_secret
from ..deps import AdminPrincipal, BrokerDep, Db, SettingsDep
from ..errors import COMMON_RESPONSES, NOT_FOUND_RESPONSE, conflict, field_error, not_found

router = APIRouter(tags=["webhooks"], responses=COMMON_RESPONSES)

#: How long the secret a rotation replaced still signs beside the new one.
ROTATION_GRACE = timedelta(hours=24)

WebhookId = Annotated[str, Path(max_length=64)]
DeliveryId = Annotated[str, Path(max_length=64)]
EventType = Literal[
    "conversation.created",
    "conversation.updated",
    "conversation.merged",
    "message.received",
    "message.sent",
    "message.delivery_changed",
    "stream.status_changed",
    "domain.verification_changed",
]
EventTypes = Annotated[list[EventType], Field(min_length=1, max_length=len(payloads.EVENT_TYPES))]
Description = Annotated[str, Field(max_length=500)]
Url = Annotated[str, Field(min_length=8, max_length=2048, description="http:// or https:// endpoint; no redirects")]

SUBSCRIPTION_EXAMPLE = {
    "id": "wh_5b0c7f3a9d2e4c1b8a6f0e9d8c7b6a51",
    "url": "https://crm.example.com/hooks/mailstream",
    "event_types": ["conversation.created", "message.received"],
    "enabled": True,
    "description": "CRM sync",
    "created_at": "2026-12-05T09:00:00Z",
    "updated_at": "2026-12-05T09:00:00Z",
    "failing_since": None,
    "disabled_at": None,
    "disabled_reason": None,
}
SECRET_EXAMPLE = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw9nTtl2ovSd8="  # noqa: S105 - documentation example


def _validate_url(url: str) -> str:
    try:
        return check_url(url)
    except DestinationRefused as exc:
        raise ValueError(str(exc)) from None


class WebhookCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "url": "https://crm.example.com/hooks/mailstream",
                    "event_types": ["conversation.created", "message.received"],
                    "description": "CRM sync",
                }
            ]
        },
    )
    url: Url
    event_types: EventTypes
    enabled: bool = True
    description: Description = ""

    _url = field_validator("url")(_validate_url)


class WebhookUpdate(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"enabled": True}, {"event_types": ["conversation.updated"]}]}
    )
    url: Url | None = None
    event_types: EventTypes | None = None
    enabled: bool | None = Field(default=None, description="true again after a disable clears the failure record")
    description: Description | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, url: str | None) -> str | None:
        return None if url is None else _validate_url(url)


class WebhookPublic(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [SUBSCRIPTION_EXAMPLE]})
    id: str
    url: str
    event_types: list[str]
    enabled: bool
    description: str
    created_at: datetime
    updated_at: datetime
    failing_since: datetime | None = Field(description="Every attempt has failed since then (null: healthy)")
    disabled_at: datetime | None = None
    disabled_reason: str | None = Field(default=None, description="Why the dispatcher disabled it")


class WebhookWithSecret(WebhookPublic):
    model_config = ConfigDict(json_schema_extra={"examples": [{**SUBSCRIPTION_EXAMPLE, "secret": SECRET_EXAMPLE}]})
    secret: str = Field(description="Standard Webhooks signing secret; shown only now, store it")


class SecretRotated(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": SUBSCRIPTION_EXAMPLE["id"],
                    "secret": SECRET_EXAMPLE,
                    "previous_secret_valid_until": "2026-12-06T09:00:00Z",
                }
            ]
        }
    )
    id: str
    secret: str = Field(description="The new signing secret, in use from the next attempt on; shown only now")
    previous_secret_valid_until: datetime = Field(
        description="Until then each request is signed with the old secret too (two signatures in webhook-signature)"
    )


class AttemptPublic(BaseModel):
    at: datetime
    status_code: int | None = Field(description="The endpoint's HTTP status (null: no answer: timeout, refused)")
    latency_ms: int
    response_snippet: str = Field(description="The first KiB of the endpoint's response body")
    error: str | None
    outcome: Literal["succeeded", "failed"]


DELIVERY_EXAMPLE = {
    "id": "msg_2f1e0d9c8b7a69584736251403f2e1d0",
    "event_type": "message.received",
    "state": "pending",
    "attempts": 2,
    "created_at": "2026-12-05T09:30:00Z",
    "next_attempt_at": "2026-12-05T09:32:31Z",
    "delivered_at": None,
    "last_status": 500,
    "last_error": "HTTP 500",
    "payload": payloads.EXAMPLES["message.received"],
}


class DeliveryPublic(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [DELIVERY_EXAMPLE]})
    id: str = Field(description="Also the `webhook-id` header of every attempt: the same on retries and replays")
    event_type: str
    state: Literal["pending", "delivered", "failed"]
    attempts: int
    created_at: datetime
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    last_status: int | None
    last_error: str | None
    payload: dict[str, Any] = Field(description="The body sent, as JSON")


class DeliveryDetail(DeliveryPublic):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    **DELIVERY_EXAMPLE,
                    "attempt_log": [
                        {
                            "at": "2026-12-05T09:30:00Z",
                            "status_code": 500,
                            "latency_ms": 41,
                            "response_snippet": "upstream error",
                            "error": None,
                            "outcome": "failed",
                        }
                    ],
                }
            ]
        }
    )
    attempt_log: list[AttemptPublic]


class EventTypePublic(BaseModel):
    type: str
    description: str
    example: dict[str, Any]


def _box(request: Request) -> SecretBox:
    return request.app.state.webhook_secrets


def to_public(doc: dict[str, Any]) -> WebhookPublic:
    return WebhookPublic(
        id=doc["_id"],
        url=doc["url"],
        event_types=doc["event_types"],
        enabled=doc["enabled"],
        description=doc.get("description", ""),
        created_at=doc["created_at"],
        updated_at=doc["updated_at"],
        failing_since=doc.get("failing_since"),
        disabled_at=doc.get("disabled_at"),
        disabled_reason=doc.get("disabled_reason"),
    )


def delivery_to_public(doc: dict[str, Any]) -> DeliveryPublic:
    return DeliveryPublic(
        id=doc["_id"],
        event_type=doc["event_type"],
        state=doc["state"],
        attempts=doc.get("attempts", 0),
        created_at=doc["created_at"],
        next_attempt_at=doc.get("next_attempt_at") if doc["state"] == "pending" else None,
        delivered_at=doc.get("delivered_at"),
        last_status=doc.get("last_status"),
        last_error=doc.get("last_error"),
        payload=json.loads(doc["body"]),
    )


def _refuse_private_literal(url: str, allow_private: bool) -> None:
    """An IP literal (or localhost) that can never be a public endpoint is refused now, not at the first attempt;
    host names are checked at every attempt, as their addresses may change."""
    if allow_private:
        return
    host = urlsplit(url).hostname or ""
    if host == "localhost" or host.endswith(".localhost"):
        raise field_error(("body", "url"), "the URL names this machine (localhost)")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return
    if (reason := refusal_of_address(host)) is not None:
        raise field_error(("body", "url"), f"private destinations are not allowed: {reason}")


@router.get("/v1/webhook-event-types", response_model=list[EventTypePublic], summary="Event types with examples")
async def list_event_types(principal: AdminPrincipal) -> list[EventTypePublic]:
    return [
        EventTypePublic(type=name, description=text, example=payloads.EXAMPLES[name])
        for name, text in payloads.EVENT_TYPES.items()
    ]


@router.post("/v1/webhooks", status_code=201, response_model=WebhookWithSecret, summary="Subscribe (admin)")
async def create_webhook(
    body: WebhookCreate, principal: AdminPrincipal, db: Db, settings: SettingsDep, request: Request
) -> WebhookWithSecret:
    _refuse_private_literal(body.url, settings.webhooks_allow_private_destinations)
    secret = new_secret()
    doc = await webhooks_repo.create_subscription(
        db,
        principal.account_id,
        url=body.url,
        event_types=list(body.event_types),
        enabled=body.enabled,
        description=body.description,
        secret_sealed=_box(request).seal(secret),
    )
    return WebhookWithSecret(**to_public(doc).model_dump(), secret=secret)


@router.get("/v1/webhooks", response_model=Page[WebhookPublic])
async def list_webhooks(
    principal: AdminPrincipal, db: Db, limit: LimitParam = DEFAULT_LIMIT, cursor: CursorParam = None
) -> Page[WebhookPublic]:
    docs, next_values = await webhooks_repo.list_subscriptions(
        db, principal.account_id, limit=limit, after=decode_optional_cursor(cursor)
    )
    return Page(items=[to_public(d) for d in docs], next_cursor=encode_optional_cursor(next_values))


@router.get("/v1/webhooks/{webhook_id}", response_model=WebhookPublic, responses=NOT_FOUND_RESPONSE)
async def get_webhook(webhook_id: WebhookId, principal: AdminPrincipal, db: Db) -> WebhookPublic:
    doc = await webhooks_repo.get_subscription(db, principal.account_id, webhook_id)
    if doc is None:
        raise not_found("webhook")
    return to_public(doc)


@router.patch("/v1/webhooks/{webhook_id}", response_model=WebhookPublic, responses=NOT_FOUND_RESPONSE)
async def update_webhook(
    webhook_id: WebhookId, body: WebhookUpdate, principal: AdminPrincipal, db: Db, settings: SettingsDep
) -> WebhookPublic:
    changes = body.model_dump(exclude_none=True)
    if "url" in changes:
        _refuse_private_literal(changes["url"], settings.webhooks_allow_private_destinations)
    if not changes:
        doc = await webhooks_repo.get_subscription(db, principal.account_id, webhook_id)
    else:
        doc = await webhooks_repo.update_subscription(db, principal.account_id, webhook_id, changes)
    if doc is None:
        raise not_found("webhook")
    return to_public(doc)


@router.delete("/v1/webhooks/{webhook_id}", status_code=204, responses=NOT_FOUND_RESPONSE)
async def delete_webhook(webhook_id: WebhookId, principal: AdminPrincipal, db: Db) -> Response:
    if not await webhooks_repo.delete_subscription(db, principal.account_id, webhook_id):
        raise not_found("webhook")
    return Response(status_code=204)


@router.post(
    "/v1/webhooks/{webhook_id}/secret/rotate",
    response_model=SecretRotated,
    responses=NOT_FOUND_RESPONSE,
    summary="Replace the signing secret (shown once; the old one also signs for 24 hours)",
)
async def rotate_secret(webhook_id: WebhookId, principal: AdminPrincipal, db: Db, request: Request) -> SecretRotated:
    secret = new_secret()
    updated = await webhooks_repo.replace_secret(
        db, principal.account_id, webhook_id, _box(request).seal(secret), grace=ROTATION_GRACE
    )
    if updated is None:
        raise not_found("webhook")
    return SecretRotated(id=webhook_id, secret=secret, previous_secret_valid_until=updated["previous_secret_until"])


@router.get("/v1/webhooks/{webhook_id}/deliveries", response_model=Page[DeliveryPublic], responses=NOT_FOUND_RESPONSE)
async def list_deliveries(
    webhook_id: WebhookId,
    principal: AdminPrincipal,
    db: Db,
    limit: LimitParam = DEFAULT_LIMIT,
    cursor: CursorParam = None,
) -> Page[DeliveryPublic]:
    if await webhooks_repo.get_subscription(db, principal.account_id, webhook_id) is None:
        raise not_found("webhook")
    docs, next_values = await webhooks_repo.list_deliveries(
        db, principal.account_id, webhook_id, limit=limit, after=decode_optional_cursor(cursor)
    )
    return Page(items=[delivery_to_public(d) for d in docs], next_cursor=encode_optional_cursor(next_values))


@router.get(
    "/v1/webhooks/{webhook_id}/deliveries/{delivery_id}", response_model=DeliveryDetail, responses=NOT_FOUND_RESPONSE
)
async def get_delivery(
    webhook_id: WebhookId, delivery_id: DeliveryId, principal: AdminPrincipal, db: Db
) -> DeliveryDetail:
    doc = await webhooks_repo.get_account_delivery(db, principal.account_id, webhook_id, delivery_id)
    if doc is None:
        raise not_found("delivery")
    attempts = await webhooks_repo.list_attempts(db, principal.account_id, delivery_id)
    return DeliveryDetail(
        **delivery_to_public(doc).model_dump(),
        attempt_log=[AttemptPublic.model_validate(a) for a in attempts],
    )


@router.post(
    "/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/replay",
    status_code=202,
    response_model=DeliveryPublic,
    responses={
        **NOT_FOUND_RESPONSE,
        409: {"description": "The delivery is still being attempted, or the webhook is disabled"},
    },
    summary="Send a delivered or failed delivery again (same webhook-id, a fresh retry schedule)",
)
async def replay_delivery(
    webhook_id: WebhookId, delivery_id: DeliveryId, principal: AdminPrincipal, db: Db, broker: BrokerDep
) -> DeliveryPublic:
    subscription = await webhooks_repo.get_subscription(db, principal.account_id, webhook_id)
    doc = await webhooks_repo.get_account_delivery(db, principal.account_id, webhook_id, delivery_id)
    if subscription is None or doc is None:
        raise not_found("delivery")
    if not subscription["enabled"]:
        raise conflict("the webhook is disabled; enable it first (PATCH enabled: true)")
    if doc["state"] == "pending" and not doc.get("schedule_pending"):
        raise conflict("the delivery is still being attempted")
    if doc["state"] != "pending":
        reopened = await webhooks_repo.reopen_for_replay(db, principal.account_id, delivery_id, utcnow())
        if reopened is None:
            raise conflict("the delivery is still being attempted")
        doc = reopened
    # A replay whose command was not confirmed is pending with `schedule_pending`: asking again publishes again.
    await broker.publish(
        WebhookAttemptDue(delivery_id=doc["_id"], sequence=doc["sequence"], due_at=doc["next_attempt_at"])
    )
    await webhooks_repo.schedule_published(db, doc["_id"], doc["sequence"])
    return delivery_to_public(doc)
