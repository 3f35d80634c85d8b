"""The public domain paths, reached only through the gateway: add, list, show, verify, rotate and delete."""

from typing import Any

from fastapi import APIRouter, HTTPException, Response

from mailstream_common.pages import (
    CursorParam,
    InvalidCursor,
    LimitParam,
    Page,
    decode_optional_cursor,
    encode_optional_cursor,
)
from mailstream_common.service_auth import AUTH_RESPONSES

from ...manager import DomainExists, RotationInProgress
from ..deps import Admin, Caller, Manager
from ..schemas import DomainCreate, DomainPublic

router = APIRouter(prefix="/v1/domains", tags=["domains"])

NOT_FOUND = {**AUTH_RESPONSES, 404: {"description": "No such domain in this account"}}


def _found(value: dict[str, Any] | None) -> dict[str, Any]:
    if value is None:
        raise HTTPException(404, "domain not found")
    return value


@router.post(
    "",
    status_code=201,
    response_model=DomainPublic,
    responses={**AUTH_RESPONSES, 409: {"description": "Already a sending domain of this account"}},
)
async def create_domain(body: DomainCreate, who: Admin, manager: Manager) -> dict[str, Any]:
    """Add a sending domain: generates its DKIM key and lists the DNS records to publish."""
    try:
        return await manager.create(who.account_id, body.name, body.dkim_key_bits)
    except DomainExists:
        raise HTTPException(409, f"{body.name} is already a sending domain of this account") from None


@router.get("", response_model=Page[DomainPublic], responses=AUTH_RESPONSES)
async def list_domains(who: Caller, manager: Manager, limit: LimitParam = 50, cursor: CursorParam = None) -> Any:
    after = decode_optional_cursor(cursor)
    if after is not None and not isinstance(after.get("name"), str):
        raise InvalidCursor()  # a cursor of another list
    items = await manager.list_for(who.account_id, after_name=after and after["name"], limit=limit + 1)
    last = {"name": items[limit - 1]["name"]} if len(items) > limit else None
    return {"items": items[:limit], "next_cursor": encode_optional_cursor(last)}


@router.get("/{domain_id}", response_model=DomainPublic, responses=NOT_FOUND)
async def get_domain(domain_id: str, who: Caller, manager: Manager) -> dict[str, Any]:
    """The records to publish with the result of the last check."""
    return _found(await manager.get(who.account_id, domain_id))


@router.post("/{domain_id}/verify", response_model=DomainPublic, responses=NOT_FOUND)
async def verify_domain(domain_id: str, who: Admin, manager: Manager) -> dict[str, Any]:
    """Look every record up now and report per-record status and diagnostics."""
    return _found(await manager.verify(who.account_id, domain_id))


@router.post(
    "/{domain_id}/dkim/rotate",
    response_model=DomainPublic,
    responses={**NOT_FOUND, 409: {"description": "A rotation is already waiting for its DNS record"}},
)
async def rotate_key(domain_id: str, who: Admin, manager: Manager) -> dict[str, Any]:
    """Create a new DKIM key under a new selector; signing switches to it once its record verifies, and the
    old record is shown as retiring until its grace period ends."""
    try:
        return _found(await manager.rotate(who.account_id, domain_id))
    except RotationInProgress as exc:
        raise HTTPException(409, str(exc)) from None


@router.delete("/{domain_id}", status_code=204, responses=NOT_FOUND)
async def delete_domain(domain_id: str, who: Admin, manager: Manager) -> Response:
    if not await manager.delete(who.account_id, domain_id):
        raise HTTPException(404, "domain not found")
    return Response(status_code=204)
