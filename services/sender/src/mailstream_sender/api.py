"""The sender's HTTP app: the suppression list (public paths, proxied by the gateway, trusting only the gateway's
credential, see mailstream_common.service_auth) and /healthz, /readyz, /metrics."""

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Response
from pydantic import BaseModel, Field, field_validator

from mailstream_common.http_apps import install_allow_header
from mailstream_common.ops import ReadinessCheck, ops_routes
from mailstream_common.service_auth import AUTH_RESPONSES, Forwarded, admin_only, forwarded_account

from .repository import Suppression, Suppressions

_ADDRESS = re.compile(r"^[^\s<>@\"(),;:\\]+@[^\s<>@\"(),;:\\]+\.[^\s<>@\"(),;:\\]+$")


class SuppressionCreate(BaseModel):
    address: str = Field(examples=["customer@example.net"])
    reason: str = Field(default="added by an admin", max_length=500)

    @field_validator("address")
    @classmethod
    def _valid_address(cls, value: str) -> str:
        value = value.strip().lower()
        if not _ADDRESS.match(value) or len(value) > 254:
            raise ValueError("not an email address")
        return value


class SuppressionPublic(BaseModel):
    address: str
    reason: str
    source: Literal["bounces", "api"] = Field(description="Suppressed by repeated hard bounces or by an admin")
    hard_bounces: int
    created_at: datetime

    @classmethod
    def of(cls, s: Suppression) -> "SuppressionPublic":
        return cls(
            address=s.address, reason=s.reason, source=s.source, hard_bounces=s.hard_bounces, created_at=s.created_at
        )


class SuppressionList(BaseModel):
    items: list[SuppressionPublic]
    next_cursor: str | None


def create_app(
    suppressions: Suppressions, service_callers: Mapping[str, str], checks: Mapping[str, ReadinessCheck]
) -> FastAPI:
    """`service_callers`: caller name -> SHA-256 of its token (only the gateway's opens these routes)."""
    caller = forwarded_account
    admin = admin_only("admin role required")

    router = APIRouter(prefix="/v1/suppressions", tags=["suppressions"], responses=AUTH_RESPONSES)
    not_suppressed = {404: {"description": "The address is not suppressed in this account"}}

    @router.get("", response_model=SuppressionList, summary="Addresses replies are not sent to")
    async def list_suppressions(
        who: Annotated[Forwarded, Depends(caller)],
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
        cursor: Annotated[
            str | None,
            Query(max_length=254, description="`next_cursor` of the previous page; omit for the first page"),
        ] = None,
    ) -> SuppressionList:
        found = await suppressions.list(who.account_id, limit=limit + 1, after=cursor)
        page = found[:limit]
        next_cursor = page[-1].address if len(found) > limit else None
        return SuppressionList(items=[SuppressionPublic.of(s) for s in page], next_cursor=next_cursor)

    @router.post("", status_code=201, response_model=SuppressionPublic, summary="Suppress an address")
    async def add_suppression(body: SuppressionCreate, who: Annotated[Forwarded, Depends(admin)]) -> SuppressionPublic:
        return SuppressionPublic.of(await suppressions.suppress(who.account_id, body.address, body.reason))

    @router.get("/{address}", response_model=SuppressionPublic, responses=not_suppressed)
    async def get_suppression(address: str, who: Annotated[Forwarded, Depends(caller)]) -> SuppressionPublic:
        found = await suppressions.get(who.account_id, address)
        if found is None:
            raise HTTPException(404, "not suppressed")
        return SuppressionPublic.of(found)

    @router.delete(
        "/{address}",
        status_code=204,
        summary="Lift a suppression (the bounce count restarts)",
        responses=not_suppressed,
    )
    async def remove_suppression(address: str, who: Annotated[Forwarded, Depends(admin)]) -> Response:
        if not await suppressions.remove(who.account_id, address):
            raise HTTPException(404, "not suppressed")
        return Response(status_code=204)

    app = FastAPI(title="Mailstream sender", version="1")
    app.state.service_callers = dict(service_callers)
    install_allow_header(app)
    app.include_router(router)
    app.router.routes.extend(ops_routes(checks))
    return app
