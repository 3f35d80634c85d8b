"""`/v1/automation/rules...`: rule CRUD, ordering and dry runs. Admins write, agents read."""

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Query, Response, status
from pydantic import ValidationError

from mailstream_common.pages import DEFAULT_LIMIT, CursorParam, LimitParam, Page, decode_optional_cursor, encode_cursor

from ...evaluation import evaluate_rule
from ...loop_protection import automatic_mail_reason, split_auto_reply
from ...repositories import KnownReferencesRepository
from ...rules import RuleDefinition, StoredRule
from .. import examples
from ..deps import Admin, AnyCaller, KnownReferences, Rules, Settings
from ..responses import AUTH as _AUTH
from ..responses import INVALID as _INVALID
from ..responses import NOT_FOUND as _NOT_FOUND
from ..responses import rule_not_found
from ..schemas import RuleCreate, RulePublic, RuleTest, RuleTestResult, RuleUpdate

router = APIRouter(prefix="/v1/automation", tags=["automation"])


def _public(rule: StoredRule) -> RulePublic:
    return RulePublic.model_validate(rule.model_dump())


async def _check_references(
    known: KnownReferencesRepository, account_id: str, definition: RuleDefinition, settle_seconds: float
) -> None:
    """The topic, streams and canned responses a rule names must be the caller's own."""
    errors = await known.errors_for(account_id, definition, settle_seconds=settle_seconds)
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
    known: KnownReferences,
    settings: Settings,
    body: Annotated[RuleCreate, Body(openapi_examples=examples.CREATE_EXAMPLES)],
) -> RulePublic:
    """Rules run in `position` order on every inbound message of the account (within their topic/streams)."""
    definition = RuleDefinition.model_validate(body.model_dump(exclude={"position"}))
    await _check_references(known, caller.account_id, definition, settings.reference_settle_seconds)
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
            raise rule_not_found()
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
        raise rule_not_found()
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
    known: KnownReferences,
    settings: Settings,
    body: Annotated[RuleUpdate, Body(openapi_examples=examples.UPDATE_EXAMPLES)],
) -> RulePublic:
    current = await rules.get(caller.account_id, rule_id)
    if current is None:
        raise rule_not_found()
    try:
        definition = RuleDefinition.model_validate(body.merged_into(current))
    except ValidationError as exc:  # a combination the parts alone did not reveal
        raise HTTPException(
            422, detail=[{**e, "loc": ["body", *e["loc"]], "ctx": None} for e in exc.errors(include_url=False)]
        ) from None
    await _check_references(known, caller.account_id, definition, settings.reference_settle_seconds)
    updated = await rules.update(caller.account_id, rule_id, definition, position=body.position, now=datetime.now(UTC))
    if updated is None:
        raise rule_not_found()
    return _public(updated)


@router.delete(
    "/rules/{rule_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={**_AUTH, **_NOT_FOUND},
    summary="Delete a rule (its runs stay recorded)",
)
async def delete_rule(rule_id: str, caller: Admin, rules: Rules) -> Response:
    if not await rules.delete(caller.account_id, rule_id):
        raise rule_not_found()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
