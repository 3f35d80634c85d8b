"""Retention is the server's: TTL indexes on `expires_at` (each run and auto-reply record gets its expiry when it is
written: consumers/test_evaluate.py). The TTL monitor's own timing is not waited on here."""

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from mailstream_automation.repositories import AUTO_REPLIES, RUNS, ensure_indexes

pytestmark = pytest.mark.integration


async def test_runs_and_auto_reply_records_have_ttl_indexes_on_their_expiry(mongo_db: AsyncDatabase):
    await ensure_indexes(mongo_db)
    for collection, name in ((RUNS, "runs_expiry"), (AUTO_REPLIES, "auto_replies_expiry")):
        index = (await mongo_db[collection].index_information())[name]
        assert index["key"] == [("expires_at", 1)] and index["expireAfterSeconds"] == 0, (collection, index)
