"""Automation's part of an erasure on the real database: runs of the listed messages or about the customer, and the
auto-reply records the customer's messages took; another account's and other customers' stay."""

from datetime import UTC, datetime, timedelta

from mailstream_automation.repositories import AUTO_REPLIES, RULES, RUNS, ensure_indexes, erasure
from mailstream_common.contracts import DataErasureRequested

ANN = "ann@example.org"
NOW = datetime.now(UTC)


async def test_erasure_takes_the_runs_and_auto_reply_records_of_the_person(mongo_db):
    await ensure_indexes(mongo_db)
    await mongo_db[RULES].insert_many([{"_id": "rule1", "account_id": "acc1"}, {"_id": "rule2", "account_id": "acc2"}])
    runs = [
        ("run1", "acc1", "m1", ANN),  # listed message
        ("run2", "acc1", "m9", ANN),  # not listed, found by its customer
        ("run3", "acc1", "m3", "bob@example.net"),
        ("run4", "acc2", "m4", ANN),
    ]
    await mongo_db[RUNS].insert_many(
        [
            {"_id": r, "account_id": a, "message_id": m, "conversation_id": "c", "customer": c, "at": NOW}
            for r, a, m, c in runs
        ]
    )
    expires = NOW + timedelta(days=1)
    await mongo_db[AUTO_REPLIES].insert_many(
        [
            {"_id": f"rule1:{ANN}", "message_id": "m1", "expires_at": expires},
            {"_id": f"gone-rule:{ANN}", "message_id": "m1", "expires_at": expires},  # its rule was deleted
            {"_id": "rule1:bob@example.net", "message_id": "m3", "expires_at": expires},
            {"_id": f"rule2:{ANN}", "message_id": "m4", "expires_at": expires},
        ]
    )
    request = DataErasureRequested(request_id="r", account_id="acc1", address=ANN, message_ids=["m1"])
    assert await erasure.erase(mongo_db, request) == {"runs": 2, "auto_reply_records": 2}
    assert {d["_id"] async for d in mongo_db[RUNS].find()} == {"run3", "run4"}
    assert {d["_id"] async for d in mongo_db[AUTO_REPLIES].find()} == {"rule1:bob@example.net", f"rule2:{ANN}"}
    assert await erasure.erase(mongo_db, request) == {"runs": 0, "auto_reply_records": 0}
