"""Dead letters on the real database: kept once per copy, a requeued letter that dies again is the same letter,
requeue and discard are single conditional updates with one winner, and tenants see only their own."""

import asyncio
import json
import os
from datetime import timedelta

from mailstream_common import mongo
from mailstream_common.contracts import utcnow
from mailstream_inbox.dead_letters import letter_record
from mailstream_inbox.repositories import dead_letters as repo


def copy(account_id: str = "a1", *, requeues: int = 0, reason: str = "Reject: no", message_id: str = "m1", body=None):
    body = body if body is not None else json.dumps({"account_id": account_id}).encode()
    headers = {"x-event": "probe", "x-error": reason, "x-origin-queue": "q1"}
    if requeues:
        headers["x-requeues"] = requeues
    record = letter_record(
        "q1", body, headers, message_id=message_id, correlation_id="c1", content_type="application/json", now=utcnow()
    )
    return record, body


async def test_a_copy_is_kept_once_and_its_body_reads_back(mongo_db):
    await mongo.ensure_indexes(mongo_db, repo.INDEXES)
    big = os.urandom(2 * repo.CHUNK_BYTES + 3)
    record, body = copy(body=big)
    assert await repo.keep(mongo_db, record, body) == "kept"
    assert await repo.keep(mongo_db, record, body) == "duplicate"  # the keeper's redelivery
    assert await repo.body_of(mongo_db, record["_id"]) == big
    assert await mongo_db[repo.LETTERS].count_documents({}) == 1


async def test_a_requeued_letter_that_dies_again_is_dead_again_with_its_history(mongo_db):
    await mongo.ensure_indexes(mongo_db, repo.INDEXES)
    record, body = copy(reason="Reject: first")
    await repo.keep(mongo_db, record, body)
    claimed = await repo.claim_requeue(mongo_db, record["_id"], account_id=None, by="op")
    assert claimed["state"] == "requeuing" and claimed["requeues"] == 1
    assert await repo.finish_requeue(mongo_db, claimed)

    stale, _ = copy(reason="Reject: first")  # the first death's copy again (requeue count 0): changes nothing
    assert await repo.keep(mongo_db, stale, body) == "duplicate"
    again, _ = copy(requeues=1, reason="Reject: second")
    assert await repo.keep(mongo_db, again, body) == "died_again"
    assert await repo.keep(mongo_db, again, body) == "duplicate"

    letter = await repo.get(mongo_db, record["_id"], account_id="a1")
    assert letter["state"] == "dead" and letter["reason"] == "Reject: second" and "expires_at" not in letter
    assert [(h["event"], h.get("reason"), h.get("by")) for h in letter["history"]] == [
        ("died", "Reject: first", None),
        ("requeued", None, "op"),
        ("died", "Reject: second", None),
    ]


async def test_of_concurrent_requeues_and_discards_exactly_one_wins(mongo_db):
    await mongo.ensure_indexes(mongo_db, repo.INDEXES)
    record, body = copy()
    await repo.keep(mongo_db, record, body)
    results = await asyncio.gather(
        *(repo.claim_requeue(mongo_db, record["_id"], account_id="a1", by=f"op{i}") for i in range(4)),
        *(repo.discard(mongo_db, record["_id"], account_id="a1", reason="r", by=f"op{i}") for i in range(4)),
    )
    assert sum(result is not None for result in results) == 1


async def test_a_stranded_requeue_may_be_taken_over_after_its_lease(mongo_db):
    await mongo.ensure_indexes(mongo_db, repo.INDEXES)
    record, body = copy()
    await repo.keep(mongo_db, record, body)
    first = await repo.claim_requeue(mongo_db, record["_id"], account_id=None, by="op1")
    assert await repo.claim_requeue(mongo_db, record["_id"], account_id=None, by="op2") is None
    later = utcnow() + repo.REQUEUE_LEASE + timedelta(seconds=1)
    second = await repo.claim_requeue(mongo_db, record["_id"], account_id=None, by="op2", now=later)
    assert second["requeue"]["by"] == "op2" and second["requeues"] == first["requeues"]  # its copy may be out
    assert not await repo.finish_requeue(mongo_db, first)  # the first owner's claim is gone
    assert await repo.finish_requeue(mongo_db, second)


async def test_a_failed_publish_leaves_the_letter_dead(mongo_db):
    await mongo.ensure_indexes(mongo_db, repo.INDEXES)
    record, body = copy()
    await repo.keep(mongo_db, record, body)
    claimed = await repo.claim_requeue(mongo_db, record["_id"], account_id=None, by="op")
    await repo.release_requeue(mongo_db, claimed)
    assert (await repo.get(mongo_db, record["_id"], account_id=None))["state"] == "dead"


async def test_tenants_see_only_their_letters_and_the_operator_sees_all(mongo_db):
    await mongo.ensure_indexes(mongo_db, repo.INDEXES)
    for account, message_id in (("a1", "m1"), ("a2", "m2"), ("a1", "m3")):
        record, body = copy(account, message_id=message_id)
        await repo.keep(mongo_db, record, body)
    mine, _ = await repo.list_letters(mongo_db, account_id="a1", limit=10)
    assert sorted(d["message_id"] for d in mine) == ["m1", "m3"]
    assert await repo.get(mongo_db, "q1:m2", account_id="a1") is None
    assert await repo.claim_requeue(mongo_db, "q1:m2", account_id="a1", by="x") is None
    assert await repo.discard(mongo_db, "q1:m2", account_id="a1", reason="r", by="x") is None
    everyone, _ = await repo.list_letters(mongo_db, account_id=None, limit=10)
    assert len(everyone) == 3
    assert await repo.count_dead_by_queue(mongo_db) == {"q1": 3}
    page, after = await repo.list_letters(mongo_db, account_id=None, limit=2)
    rest, _ = await repo.list_letters(mongo_db, account_id=None, limit=2, after=after)
    assert len(page) == 2 and len(rest) == 1 and {d["_id"] for d in page} & {d["_id"] for d in rest} == set()


async def test_final_letters_expire_with_their_bodies(mongo_db):
    await mongo.ensure_indexes(mongo_db, repo.INDEXES)
    record, body = copy()
    await repo.keep(mongo_db, record, body)
    letter = await repo.discard(mongo_db, record["_id"], account_id="a1", reason="duplicate", by="op")
    assert letter["discard"]["reason"] == "duplicate" and letter["expires_at"] > utcnow()
    chunk = await mongo_db[repo.BODIES].find_one({"letter_id": record["_id"]})
    assert chunk["expires_at"] == letter["expires_at"]
    info = await mongo_db[repo.LETTERS].index_information()
    assert info["dead_letters_expiry"]["expireAfterSeconds"] == 0
