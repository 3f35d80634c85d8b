"""`/v1/automation/...runs`: what the rules did, newest first, with the reason for each condition."""

from typing import Annotated, Any

from fastapi import APIRouter, Query

from mailstream_common.pages import DEFAULT_LIMIT, CursorParam, LimitParam, Page, decode_optional_cursor, encode_cursor

from ...repositories import RunsRepository
from ..deps import AnyCaller, Rules, Runs
from ..responses import AUTH as _AUTH
from ..responses import INVALID as _INVALID
from ..responses import NOT_FOUND as _NOT_FOUND
from ..responses import rule_not_found
from ..schemas import RunPublic

router = APIRouter(prefix="/v1/automation", tags=["automation"])


@router.get(
    "/rules/{rule_id}/runs",
    response_model=Page[RunPublic],
    responses={**_AUTH, **_NOT_FOUND, **_INVALID},
    summary="What the rule did: newest runs first, with the reason for each condition",
)
async def list_runs(
    rule_id: str,
    caller: AnyCaller,
    rules: Rules,
    runs: Runs,
    limit: LimitParam = DEFAULT_LIMIT,
    cursor: CursorParam = None,
    fired: Annotated[bool | None, Query(description="Only runs that fired (true) or did not (false)")] = None,
) -> Page[RunPublic]:
    if await rules.get(caller.account_id, rule_id) is None:
        raise rule_not_found()
    filters: dict[str, Any] = {"rule_id": rule_id} | ({} if fired is None else {"fired": fired})
    return await _runs_page(runs, caller.account_id, limit, cursor, filters)


@router.get(
    "/runs",
    response_model=Page[RunPublic],
    responses={**_AUTH, **_INVALID},
    summary="Runs of every rule, newest first: e.g. why a message or conversation was tagged or answered",
)
async def list_all_runs(
    caller: AnyCaller,
    runs: Runs,
    limit: LimitParam = DEFAULT_LIMIT,
    cursor: CursorParam = None,
    message_id: Annotated[str | None, Query(description="Only runs triggered by this message")] = None,
    conversation_id: Annotated[str | None, Query(description="Only runs on this conversation")] = None,
    fired: Annotated[bool | None, Query(description="Only runs that fired (true) or did not (false)")] = None,
) -> Page[RunPublic]:
    filters: dict[str, Any] = {}
    if message_id is not None:
        filters["message_id"] = message_id
    if conversation_id is not None:
        filters["conversation_id"] = conversation_id
    if fired is not None:
        filters["fired"] = fired
    return await _runs_page(runs, caller.account_id, limit, cursor, filters)


async def _runs_page(
    runs: RunsRepository, account_id: str, limit: int, cursor: str | None, filters: dict[str, Any]
) -> Page[RunPublic]:
    docs = await runs.page(account_id, limit=limit + 1, before=decode_optional_cursor(cursor), filters=filters)
    more = len(docs) > limit
    docs = docs[:limit]
    next_cursor = encode_cursor({"at": docs[-1]["at"], "id": docs[-1]["_id"]}) if more else None
    return Page[RunPublic](items=[RunPublic.from_document(d) for d in docs], next_cursor=next_cursor)
