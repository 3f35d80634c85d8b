"""Shared route dependencies: the caller (from the bearer key), its role, and the process-wide clients.

Contract for every route: a missing or invalid key is 401; an agent calling an admin route is 403; an id that
belongs to another account is 404, exactly like a missing one (scope every query with `principal.account_id`).
"""

from typing import Annotated

from fastapi import Depends, HTTPException, Query, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pymongo.asynchronous.database import AsyncDatabase

from mailstream_common.broker import Broker

from ..repositories import api_keys as api_keys_repo
from ..security import KeyCache, Principal, authenticate, read_ticket
from ..settings import InboxSettings

__all__ = [
    "AdminPrincipal",
    "BrokerDep",
    "CurrentPrincipal",
    "Db",
    "Principal",
    "SettingsDep",
    "get_broker",
    "get_db",
    "get_principal",
    "get_principal_or_ticket",
    "get_settings",
    "require_admin",
]

_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer ms_...`")


def get_db(request: Request) -> AsyncDatabase:
    return request.app.state.db


def get_broker(request: Request) -> Broker:
    return request.app.state.broker


def get_settings(request: Request) -> InboxSettings:
    return request.app.state.settings


Db = Annotated[AsyncDatabase, Depends(get_db)]
BrokerDep = Annotated[Broker, Depends(get_broker)]
SettingsDep = Annotated[InboxSettings, Depends(get_settings)]


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail=detail, headers={"WWW-Authenticate": "Bearer"})


async def get_principal(
    request: Request,
    db: Db,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise _unauthorized("missing API key: send 'Authorization: Bearer <api_key>'")
    cache: KeyCache | None = getattr(request.app.state, "key_cache", None)
    principal = await authenticate(db, credentials.credentials, cache)
    if principal is None:
        raise _unauthorized("invalid or revoked API key")
    request.state.principal = principal
    return principal


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


async def require_admin(principal: CurrentPrincipal) -> Principal:
    if principal.role != "admin":
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="this operation needs an admin key")
    return principal


AdminPrincipal = Annotated[Principal, Depends(require_admin)]


async def get_principal_or_ticket(
    request: Request,
    db: Db,
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ticket: Annotated[
        str | None,
        Query(max_length=2048, description="From `POST /v1/events/tickets`, for clients that cannot send headers"),
    ] = None,
) -> Principal:
    """The bearer key, or a short-lived ticket in the query (browsers' EventSource cannot send headers)."""
    if ticket is None:
        return await get_principal(request, db, credentials)
    principal = read_ticket(ticket, settings.gateway_token.get_secret_value())
    if principal is None:
        raise _unauthorized("invalid or expired ticket")
    key = await api_keys_repo.get_api_key(db, principal.account_id, principal.key_id)
    if key is None or key.get("revoked"):
        raise _unauthorized("the key behind this ticket was revoked")
    request.state.principal = principal
    return principal
