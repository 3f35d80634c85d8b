"""The suppression list: addresses replies are not sent to, per account. Agents read it; admins change it."""

from fastapi import APIRouter, HTTPException, Response

from mailstream_common.pages import (
    DEFAULT_LIMIT,
    CursorParam,
    LimitParam,
    Page,
    decode_optional_cursor,
    encode_optional_cursor,
)
from mailstream_common.service_auth import AUTH_RESPONSES

from ..deps import Admin, AnyCaller, SuppressionsDep
from ..schemas import SuppressionCreate, SuppressionPublic

router = APIRouter(prefix="/v1/suppressions", tags=["suppressions"], responses=AUTH_RESPONSES)
NOT_SUPPRESSED = {404: {"description": "The address is not suppressed in this account"}}


@router.get("", response_model=Page[SuppressionPublic], summary="Addresses replies are not sent to")
async def list_suppressions(
    who: AnyCaller, suppressions: SuppressionsDep, limit: LimitParam = DEFAULT_LIMIT, cursor: CursorParam = None
) -> Page[SuppressionPublic]:
    after = decode_optional_cursor(cursor)
    found = await suppressions.list(who.account_id, limit=limit + 1, after=after["address"] if after else None)
    page = found[:limit]
    last = {"address": page[-1].address} if len(found) > limit else None
    return Page(items=[SuppressionPublic.of(s) for s in page], next_cursor=encode_optional_cursor(last))


@router.post("", status_code=201, response_model=SuppressionPublic, summary="Suppress an address")
async def add_suppression(body: SuppressionCreate, who: Admin, suppressions: SuppressionsDep) -> SuppressionPublic:
    return SuppressionPublic.of(await suppressions.suppress(who.account_id, body.address, body.reason))


@router.get("/{address}", response_model=SuppressionPublic, responses=NOT_SUPPRESSED)
async def get_suppression(address: str, who: AnyCaller, suppressions: SuppressionsDep) -> SuppressionPublic:
    found = await suppressions.get(who.account_id, address)
    if found is None:
        raise HTTPException(404, "not suppressed")
    return SuppressionPublic.of(found)


@router.delete(
    "/{address}", status_code=204, summary="Lift a suppression (the bounce count restarts)", responses=NOT_SUPPRESSED
)
async def remove_suppression(address: str, who: Admin, suppressions: SuppressionsDep) -> Response:
    if not await suppressions.remove(who.account_id, address):
        raise HTTPException(404, "not suppressed")
    return Response(status_code=204)
