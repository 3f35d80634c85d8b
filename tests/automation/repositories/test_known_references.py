"""`known_references` against the real database: a newer event wins, an older one never overwrites it, and only the
account's live entities are returned."""

import uuid

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from mailstream_automation.repositories import KnownReferencesRepository
from mailstream_automation.rules import RuleDefinition
from mailstream_common.contracts import TopicChanged

pytestmark = pytest.mark.integration


def topic(topic_id: str, account_id: str, version: int, deleted: bool = False) -> TopicChanged:
    return TopicChanged(
        change="deleted" if deleted else "created",
        version=version,
        account_id=account_id,
        topic_id=topic_id,
        name="t",
        deleted=deleted,
    )


async def test_apply_keeps_the_newest_version_and_live_filters_by_account(mongo_db: AsyncDatabase):
    known = KnownReferencesRepository(mongo_db)
    account, other = uuid.uuid4().hex, uuid.uuid4().hex
    t1, t2, t3 = (f"t-{uuid.uuid4().hex[:8]}" for _ in range(3))
    await known.apply(topic(t1, account, 1))
    await known.apply(topic(t2, account, 2, deleted=True))
    await known.apply(topic(t2, account, 1))  # older than the deletion: ignored
    await known.apply(topic(t3, other, 1))
    ids = [f"topic:{t}" for t in (t1, t2, t3)]
    assert set(await known.live(account, ids)) == {f"topic:{t1}"}
    assert await known.live(account, []) == {}

    draft = RuleDefinition.model_validate(
        {"name": "r", "conditions": [], "actions": [{"type": "add_tags", "tags": ["t"]}], "topic_id": t2}
    )
    assert await known.errors_for(account, draft) == [(["body", "topic_id"], "unknown topic")]
    assert await known.errors_for(account, draft.model_copy(update={"topic_id": t1})) == []
