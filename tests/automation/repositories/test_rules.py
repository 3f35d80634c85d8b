"""`automation_rules` and the rules revision against the real database: every write renews the revision, so the
cached read serves rules only under the revision they were loaded with."""

import uuid
from datetime import UTC, datetime

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from mailstream_automation.repositories import CachedRules, RulesRepository
from mailstream_automation.rules import RuleDefinition
from mailstream_automation.rules_cache import RulesCache

pytestmark = pytest.mark.integration


def definition(name: str, enabled: bool = True) -> RuleDefinition:
    return RuleDefinition.model_validate(
        {"name": name, "enabled": enabled, "conditions": [], "actions": [{"type": "add_tags", "tags": ["t"]}]}
    )


async def test_every_write_renews_the_revision_and_the_cached_read_follows(mongo_db: AsyncDatabase):
    rules = RulesRepository(mongo_db)
    cached = CachedRules(rules, RulesCache(10))
    account = uuid.uuid4().hex
    now = datetime.now(UTC)
    assert await rules.revision(account) is None
    assert await cached.enabled_for_account(account) == ()

    first = await rules.create(account, definition("first"), position=None, now=now)
    after_create = await rules.revision(account)
    assert after_create is not None
    assert [r.name for r in await cached.enabled_for_account(account)] == ["first"]

    second = await rules.create(account, definition("second"), position=0, now=now)
    assert [r.name for r in await cached.enabled_for_account(account)] == ["second", "first"]
    assert await rules.revision(account) != after_create

    await rules.update(account, second.id, definition("second", enabled=False), position=None, now=now)
    assert [r.name for r in await cached.enabled_for_account(account)] == ["first"]

    before_delete = await rules.revision(account)
    assert await rules.delete(account, first.id)
    assert await rules.revision(account) != before_delete
    assert await cached.enabled_for_account(account) == ()
    assert [(r.name, r.position) for r in await rules.page(account, limit=10, after=None, filters={})] == [
        ("second", 0)
    ]
