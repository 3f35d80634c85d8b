"""`sender_suppressions`: a first write of a pair is one upsert, even when two race."""

import asyncio

import pytest

from mailstream_common.mongo import ensure_indexes
from mailstream_sender.repositories import INDEXES
from mailstream_sender.repositories.suppressions import Suppressions


@pytest.mark.integration
async def test_concurrent_first_bounces_of_an_address_make_one_document_and_count_each(mongo_db):
    """One upsert per bounce: of concurrent first upserts one inserts and the others update what it inserted."""
    await ensure_indexes(mongo_db, INDEXES)
    suppressions = Suppressions(mongo_db)
    await asyncio.gather(
        *(
            suppressions.record_hard_bounce("acct", "Kana@Example.net", f"m{n}", "550 no such user", threshold=2)
            for n in range(8)
        )
    )
    [doc] = await suppressions.collection.find({"account_id": "acct"}).to_list()
    assert doc["address"] == "kana@example.net" and sorted(doc["bounced_message_ids"]) == [f"m{n}" for n in range(8)]
    assert doc["suppressed"] and doc["source"] == "bounces"
    again = await suppressions.suppress("acct", "kana@example.net", "asked us to stop")
    assert again.hard_bounces == 8 and again.source == "api"
    assert await suppressions.collection.count_documents({}) == 1
