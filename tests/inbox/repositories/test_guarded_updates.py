"""The guards of the store path's per-document writes: what they match, and that they stay point writes.

Issue 12: an `_id` filter with a top-level `$or` made SecantusDB walk the whole collection, so storing a mail cost
more the more mail the inbox held (`bench/inbox_store_growth.py` shows the cost per mail as the inbox grows)."""

from datetime import UTC, datetime, timedelta

from mailstream_inbox.repositories import conversations as conversations_repo
from mailstream_inbox.repositories import messages as messages_repo

T0 = datetime(2026, 12, 1, tzinfo=UTC)


def test_the_store_paths_id_guards_have_no_top_level_or():
    assert "$or" not in messages_repo.publication_claim_filter("m", T0)
    assert "$or" not in conversations_repo.newest_inbound_guard("c", T0)


async def test_a_publication_claim_matches_no_lease_or_a_run_out_one_and_never_a_published_message(mongo_db):
    collection = mongo_db[messages_repo.COLLECTION]
    await collection.insert_many(
        [
            {"_id": "no lease field", "published": False},
            {"_id": "null lease", "published": False, "publishing": None},
            {"_id": "run out", "published": False, "publishing": {"owner": "x", "since": T0 - timedelta(seconds=1)}},
            {"_id": "running", "published": False, "publishing": {"owner": "x", "since": T0}},
            {"_id": "published", "published": True, "publishing": None},
        ]
    )
    matching = {
        doc["_id"]
        async for doc in collection.find(
            {
                "$or": [
                    messages_repo.publication_claim_filter(i, T0)
                    for i in ["no lease field", "null lease", "run out", "running", "published"]
                ]
            }
        )
    }
    assert matching == {"no lease field", "null lease", "run out"}


async def test_the_newest_inbound_guard_matches_a_conversation_without_one_or_with_an_older_or_equal_one(mongo_db):
    collection = mongo_db[conversations_repo.COLLECTION]
    await collection.insert_many(
        [
            {"_id": "missing"},
            {"_id": "null", "last_inbound_at": None},
            {"_id": "older", "last_inbound_at": T0 - timedelta(minutes=1)},
            {"_id": "equal", "last_inbound_at": T0},
            {"_id": "newer", "last_inbound_at": T0 + timedelta(minutes=1)},
        ]
    )
    matching = set()
    for conversation_id in ["missing", "null", "older", "equal", "newer"]:
        if await collection.find_one(conversations_repo.newest_inbound_guard(conversation_id, T0)):
            matching.add(conversation_id)
    assert matching == {"missing", "null", "older", "equal"}
