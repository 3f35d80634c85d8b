"""`/v1/automation/rules...`: rule CRUD, ordering, dry runs and run history. Admins write, agents read."""

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Query, Response, status
from pydantic import ValidationError

from mailstream_common.pages import DEFAULT_LIMIT, CursorParam, LimitParam, Page, decode_optional_cursor, encode_cursor

from ..evaluation import evaluate_rule
from ..loop_protection import automatic_mail_reason, split_auto_reply
from ..references import reference_errors
from ..repository import RunsRepository
from ..rules import RuleDefinition, StoredRule
from . import examples
from .deps import Admin, AnyCaller, Db, Rules, Runs, Settings
from .schemas import RuleCreate, RulePublic, RuleTest, RuleTestResult, RuleUpdate, RunPublic

router = APIRouter(prefix="/v1/automation", tags=["automation"])

_AUTH = {
    401: {"description": "Not called through the gateway (missing or invalid internal token / API key)"},
    403: {"description": "The key's role may not do this (writes need an admin key)"},
}
_NOT_FOUND = {404: {"description": "No such rule in this account (another account's rules are 404 too)"}}
_INVALID = {422: {"description": "Invalid body or query; `detail[].loc` names the field"}}


def _public(rule: StoredRule) -> RulePublic:
    return RulePublic.model_validate(rule.model_dump())


def _not_found() -> HTTPException:
    return HTTPException(404, detail="rule not found")


async def _check_references(db: Any, account_id: str, definition: RuleDefinition, settle_seconds: float) -> None:
    """The topic, streams and canned responses a rule names must be the caller's own."""
    errors = await reference_errors(db, account_id, definition, settle_seconds=settle_seconds)
    if errors:
        raise HTTPException(
            422, detail=[{"type": "value_error", "loc": loc, "msg": msg, "input": None} for loc, msg in errors]
        )


@router.post(
    "/rules",
    status_code=status.HTTP_201_CREATED,
    response_model=RulePublic,
    responses={**_AUTH, **_INVALID, 409: {"description": "The account has reached its rule limit"}},
    summary="Create a rule",
)
async def create_rule(
    caller: Admin,
    rules: Rules,
    db: Db,
    settings: Settings,
    body: Annotated[RuleCreate, Body(openapi_examples=examples.CREATE_EXAMPLES)],
) -> RulePublic:
    """Rules run in `position` order on every inbound message of the account (within their topic/streams)."""
    definition = RuleDefinition.model_validate(body.model_dump(exclude={"position"}))
    await _check_references(db, caller.account_id, definition, settings.reference_settle_seconds)
    if await rules.count(caller.account_id) >= settings.max_rules_per_account:
        raise HTTPException(409, detail=f"at most {settings.max_rules_per_account} rules per account")
    rule = await rules.create(caller.account_id, definition, position=body.position, now=datetime.now(UTC))
    return _public(rule)


@router.get("/rules", response_model=Page[RulePublic], responses={**_AUTH, **_INVALID}, summary="List rules in order")
async def list_rules(
    caller: AnyCaller,
    rules: Rules,
    limit: LimitParam = DEFAULT_LIMIT,
    cursor: CursorParam = None,
    enabled: Annotated[bool | None, Query(description="Only enabled (true) or disabled (false) rules")] = None,
    topic_id: Annotated[str | None, Query(description="Only rules scoped to this topic")] = None,
) -> Page[RulePublic]:
    filters: dict[str, Any] = {}
    if enabled is not None:
        filters["enabled"] = enabled
    if topic_id is not None:
        filters["topic_id"] = topic_id
    items = await rules.page(caller.account_id, limit=limit + 1, after=decode_optional_cursor(cursor), filters=filters)
    more = len(items) > limit
    items = items[:limit]
    next_cursor = encode_cursor({"position": items[-1].position, "id": items[-1].id}) if more else None
    return Page[RulePublic](items=[_public(r) for r in items], next_cursor=next_cursor)


@router.post(
    "/rules/test",
    response_model=RuleTestResult,
    responses={**_AUTH, **_NOT_FOUND, **_INVALID},
    summary="Dry-run a rule against a sample message",
)
async def test_rule(
    caller: AnyCaller,
    rules: Rules,
    settings: Settings,
    body: Annotated[RuleTest, Body(openapi_examples=examples.TEST_EXAMPLES)],
) -> RuleTestResult:
    """Says whether the rule's conditions would hold, why, and what it would ask the inbox to do (auto-replies held
    back by loop protection are listed; the per-customer rate limit, `enabled` and the topic/stream scope are not
    considered). Nothing is stored or sent."""
    rule: RuleDefinition | None = body.rule
    if body.rule_id is not None:
        rule = await rules.get(caller.account_id, body.rule_id)
        if rule is None:
            raise _not_found()
    assert rule is not None
    facts = body.message.to_facts()
    outcome = evaluate_rule(rule, facts, regex_timeout=settings.regex_timeout_seconds)
    actions, skipped = [], []
    if outcome.fired:
        reason = automatic_mail_reason(facts) if rule.has_auto_reply() else None
        actions, skipped = split_auto_reply(rule.actions, reason)
    return RuleTestResult.model_validate(
        {
            "fired": outcome.fired,
            "matched_conditions": outcome.matched_conditions(),
            "actions": [a.model_dump(mode="json") for a in actions],
            "skipped_actions": skipped,
        }
    )


@router.get("/rules/{rule_id}", response_model=RulePublic, responses={**_AUTH, **_NOT_FOUND}, summary="Get a rule")
async def get_rule(rule_id: str, caller: AnyCaller, rules: Rules) -> RulePublic:
    rule = await rules.get(caller.account_id, rule_id)
    if rule is None:
        raise _not_found()
    return _public(rule)


@router.patch(
    "/rules/{rule_id}",
    response_model=RulePublic,
    responses={**_AUTH, **_NOT_FOUND, **_INVALID},
    summary="Change a rule or its position",
)
async def update_rule(
    rule_id: str,
    caller: Admin,
    rules: Rules,
    db: Db,
    settings: Settings,
    body: Annotated[RuleUpdate, Body(openapi_examples=examples.UPDATE_EXAMPLES)],
) -> RulePublic:
    current = await rules.get(caller.account_id, rule_id)
    if current is None:
        raise _not_found()
    try:
        definition = RuleDefinition.model_validate(body.merged_into(current))
    except ValidationError as exc:  # a combination the parts alone did not reveal
        raise HTTPException(
            422, detail=[{**e, "loc": ["body", *e["loc"]], "ctx": None} for e in exc.errors(include_url=False)]
        ) from None
    await _check_references(db, caller.account_id, definition, settings.reference_settle_seconds)
    updated = await rules.update(caller.account_id, rule_id, definition, position=body.position, now=datetime.now(UTC))
    if updated is None:
        raise _not_found()
    return _public(updated)


@router.delete(
    "/rules/{rule_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={**_AUTH, **_NOT_FOUND},
    summary="Delete a rule (its runs stay recorded)",
)
async def delete_rule(rule_id: str, caller: Admin, rules: Rules) -> Response:
    if not await rules.delete(caller.account_id, rule_id):
        raise _not_found()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


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
        raise _not_found()
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
