"""The account's API keys: create (shown once), list, inspect, revoke; and `GET /v1/me` for the calling key."""

import logging
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from mailstream_common.broker import PublishError
from mailstream_common.contracts import ApiKeyRevoked
from mailstream_common.pages import (
    DEFAULT_LIMIT,
    CursorParam,
    LimitParam,
    Page,
    decode_optional_cursor,
    encode_optional_cursor,
)

from ...payload_types import HeaderSafeStr
from ...repositories import accounts as accounts_repo
from ...repositories import api_keys as api_keys_repo
from ..deps import AdminPrincipal, BrokerDep, CurrentPrincipal, Db
from ..errors import COMMON_RESPONSES, NOT_FOUND_RESPONSE, not_found

log = logging.getLogger(__name__)

router = APIRouter(tags=["account and keys"], responses=COMMON_RESPONSES)

KeyId = Annotated[str, Path(max_length=64)]


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"role": "agent", "name": "Alice"}]})

    role: Literal["admin", "agent"]
    name: HeaderSafeStr = Field(min_length=1, max_length=200, description="Who or what uses the key (shown in lists)")


class ApiKeyPublic(BaseModel):
    id: str
    name: str
    role: Literal["admin", "agent"]
    prefix: str = Field(
        description="The first characters of the key, to recognise it; the key itself is never shown again"
    )
    created_at: datetime
    revoked: bool
    revoked_at: datetime | None = None


class ApiKeyCreated(ApiKeyPublic):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "9b2f6c1e0d8a4e5f8a7b6c5d4e3f2a1b",
                    "name": "Alice",
                    "role": "agent",
                    "prefix": "ms_Q2xpZW",
                    "created_at": "2026-11-27T01:00:00Z",
                    "revoked": False,
                    "revoked_at": None,
                    "api_key": "ms_Q2xpZW50LWtleS1leGFtcGxlLW5vdC1hLXJlYWwta2V5",
                }
            ]
        }
    )

    api_key: str = Field(description="The key itself: shown only in this response, store it now")


class Me(BaseModel):
    account_id: str
    account_name: str | None
    key_id: str
    key_name: str
    role: Literal["admin", "agent"]


def to_public(doc: dict) -> ApiKeyPublic:
    return ApiKeyPublic(
        id=doc["_id"],
        name=doc["name"],
        role=doc["role"],
        prefix=doc["prefix"],
        created_at=doc["created_at"],
        revoked=doc.get("revoked", False),
        revoked_at=doc.get("revoked_at"),
    )


@router.get("/v1/me", response_model=Me, summary="The calling key, its role and account")
async def who_am_i(principal: CurrentPrincipal, db: Db) -> Me:
    account = await accounts_repo.get_account(db, principal.account_id)
    return Me(
        account_id=principal.account_id,
        account_name=account["name"] if account else None,
        key_id=principal.key_id,
        key_name=principal.key_name,
        role=principal.role,
    )


@router.post("/v1/api-keys", status_code=201, response_model=ApiKeyCreated, summary="Create an API key (admin)")
async def create_api_key(body: ApiKeyCreate, principal: AdminPrincipal, db: Db) -> ApiKeyCreated:
    doc, key = await api_keys_repo.create_api_key(
        db, principal.account_id, body.role, body.name, created_by=principal.actor
    )
    return ApiKeyCreated(**to_public(doc).model_dump(), api_key=key)


@router.get("/v1/api-keys", response_model=Page[ApiKeyPublic], summary="List the account's API keys (admin)")
async def list_api_keys(
    principal: AdminPrincipal, db: Db, limit: LimitParam = DEFAULT_LIMIT, cursor: CursorParam = None
) -> Page[ApiKeyPublic]:
    docs, next_values = await api_keys_repo.list_api_keys(
        db, principal.account_id, limit=limit, after=decode_optional_cursor(cursor)
    )
    return Page(items=[to_public(d) for d in docs], next_cursor=encode_optional_cursor(next_values))


@router.get("/v1/api-keys/{key_id}", response_model=ApiKeyPublic, responses=NOT_FOUND_RESPONSE)
async def get_api_key(key_id: KeyId, principal: AdminPrincipal, db: Db) -> ApiKeyPublic:
    doc = await api_keys_repo.get_api_key(db, principal.account_id, key_id)
    if doc is None:
        raise not_found("API key")
    return to_public(doc)


@router.delete(
    "/v1/api-keys/{key_id}", status_code=204, responses=NOT_FOUND_RESPONSE, summary="Revoke an API key (admin)"
)
async def revoke_api_key(
    key_id: KeyId, principal: AdminPrincipal, db: Db, broker: BrokerDep, request: Request
) -> Response:
    doc = await api_keys_repo.revoke_api_key(db, principal.account_id, key_id)
    if doc is None:
        raise not_found("API key")
    request.app.state.key_cache.forget_key(key_id)
    try:  # every other replica forgets it now; repeating a revocation repeats this, which is harmless
        await broker.publish(ApiKeyRevoked(account_id=principal.account_id, key_id=key_id))
    except PublishError:
        # The key is revoked in the database; other replicas stop trusting their copy within the cache lifetime.
        log.warning("revocation not broadcast; other replicas notice it within INBOX_API_KEY_CACHE_SECONDS")
    return Response(status_code=204)
