"""Projections apply an event only when it is newer: the pure rule, and the guarded upsert on the real database
(redelivery, reordering, and concurrent first inserts racing on the duplicate key)."""

import asyncio
import random

import pytest

from mailstream_common.projection import apply_versioned, is_empty, is_newer


@pytest.mark.parametrize(
    ("current", "incoming", "applies"),
    [(None, 1, True), (1, 2, True), (2, 2, False), (3, 2, False), (None, 7, True)],
)
def test_only_a_newer_version_applies(current, incoming, applies):
    assert is_newer(current, incoming) is applies


async def test_apply_inserts_then_only_newer_versions_change_it(mongo_db):
    projection = mongo_db["projection_test"]
    assert await is_empty(projection)
    assert await apply_versioned(projection, "s1", 1, {"address": "a@x", "deleted": False}) is True
    assert await apply_versioned(projection, "s1", 3, {"address": "c@x", "deleted": False}) is True
    # a redelivery of version 3, then the late version 2: neither changes anything
    assert await apply_versioned(projection, "s1", 3, {"address": "c@x", "deleted": False}) is False
    assert await apply_versioned(projection, "s1", 2, {"address": "b@x", "deleted": True}) is False
    assert await projection.find_one({"_id": "s1"}) == {"_id": "s1", "address": "c@x", "deleted": False, "version": 3}
    assert not await is_empty(projection)


async def test_concurrent_events_for_a_new_document_settle_on_the_newest(mongo_db):
    """Eight writers race to create one document (duplicate-key path), in a shuffled order: the newest wins."""
    projection = mongo_db["projection_race"]
    for round_number in range(5):
        document_id = f"s{round_number}"
        versions = list(range(1, 9))
        random.shuffle(versions)
        results = await asyncio.gather(*(apply_versioned(projection, document_id, v, {"value": v}) for v in versions))
        stored = await projection.find_one({"_id": document_id})
        assert stored["version"] == 8 and stored["value"] == 8
        assert any(results)
