"""Inbox's part of an erasure on the real database (`repositories/data_erasure.py`): what goes, what stays, a blob
another message shares, another account, and a re-run after a crash half-way (the broker redelivers)."""

import asyncio
from datetime import UTC, datetime, timedelta

from mailstream_common.contracts import DataErasurePartDone
from mailstream_inbox.repositories import blobs, ensure_indexes
from mailstream_inbox.repositories import conversations as conversations_repo
from mailstream_inbox.repositories import data_erasure as erasure
from mailstream_inbox.repositories import data_requests as requests_repo
from mailstream_inbox.repositories.conversations import COLLECTION as CONVERSATIONS
from mailstream_inbox.repositories.live_events import LIVE_EVENTS
from mailstream_inbox.repositories.messages import COLLECTION as MESSAGES
from mailstream_inbox.repositories.timeline import COLLECTION as TIMELINE
from mailstream_inbox.use_cases import data_requests

ANN = "ann@example.org"
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


async def seed(db, account: str = "acc1") -> dict[str, str]:
    """Ann's own conversation (her mail with an attachment, a reply), Bob's conversation Ann wrote into, and an
    unrelated one of Carl that shares the bytes of Ann's attachment."""
    await ensure_indexes(db)
    raw_ann = await blobs.put(db, f"From: {ANN}\r\n\r\nraw of ann {account}".encode())
    shared = await blobs.put(db, b"the same attachment bytes")
    only_ann = await blobs.put(db, f"attachment only ann has {account}".encode())
    raw_carl = await blobs.put(db, f"raw of carl {account}".encode())
    p = account  # ids are per account in this test
    await db[CONVERSATIONS].insert_many(
        [
            {
                "_id": f"{p}-ann",
                "account_id": account,
                "stream_id": f"{p}-stream",
                "origin_key": "ann",
                "subject": "Refund",
                "customer": {"name": "Ann", "address": ANN},
                "customer_key": ANN,
                "participants": [ANN],
                "terms": ["refund", ANN],
                "message_ids": [f"{p}-m1", f"{p}-m2"],
                "message_count": 2,
                "last_message_at": T0,
            },
            {
                "_id": f"{p}-bob",
                "account_id": account,
                "stream_id": f"{p}-stream",
                "origin_key": "bob",
                "subject": "Team order",
                "customer": {"name": "Bob", "address": "bob@example.net"},
                "customer_key": "bob@example.net",
                "participants": ["bob@example.net", ANN],
                "terms": ["team", "order", "bob@example.net", ANN],
                "message_ids": [f"{p}-m3", f"{p}-m4"],
                "message_count": 2,
                "last_message_at": T0,
            },
            {
                "_id": f"{p}-carl",
                "account_id": account,
                "stream_id": f"{p}-stream",
                "origin_key": "carl",
                "subject": "Carl",
                "customer": {"name": "Carl", "address": "carl@example.net"},
                "customer_key": "carl@example.net",
                "participants": ["carl@example.net"],
                "terms": ["carl"],
                "message_ids": [f"{p}-m5"],
                "message_count": 1,
                "last_message_at": T0,
            },
        ]
    )

    def msg(mid, conv, sender, minutes, direction="inbound", to=(), cc=(), raw=None, attachments=()):
        return {
            "_id": f"{p}-{mid}",
            "account_id": account,
            "stream_id": f"{p}-stream",
            "dedup_key": mid,
            "conversation_id": f"{p}-{conv}",
            "direction": direction,
            "from": {"name": "", "address": sender},
            "to": [{"name": "", "address": a} for a in to],
            "cc": [{"name": "", "address": a} for a in cc],
            "subject": "s",
            "text": "t",
            "raw_blob_id": raw,
            "attachments": [{"id": f"{p}-{mid}-1", "sha256": a} for a in attachments],
            "created_at": T0 + timedelta(minutes=minutes),
        }

    await db[MESSAGES].insert_many(
        [
            msg("m1", "ann", ANN, 0, raw=raw_ann, attachments=[shared, only_ann]),
            msg("m2", "ann", "support@shop.test", 1, direction="outbound", to=[ANN]),
            msg("m3", "bob", "bob@example.net", 2, to=["support@shop.test"]),
            msg("m4", "bob", ANN, 3, cc=["bob@example.net"]),
            msg("m5", "carl", "carl@example.net", 4, raw=raw_carl, attachments=[shared]),
        ]
    )
    await db[TIMELINE].insert_many(
        [
            {"_id": f"{p}-t1", "conversation_id": f"{p}-ann", "kind": "snoozed", "details": {}},
            {"_id": f"{p}-t2", "conversation_id": f"{p}-bob", "kind": "moved", "details": {"message_id": f"{p}-m4"}},
            {"_id": f"{p}-t3", "conversation_id": f"{p}-bob", "kind": "snoozed", "details": {}},
        ]
    )
    await db[LIVE_EVENTS].insert_many(
        [
            {"_id": f"{p}-e1", "account_id": account, "data": {"from": {"address": ANN.upper()}}},
            {"_id": f"{p}-e2", "account_id": account, "data": {"message_id": f"{p}-m4"}},
            {"_id": f"{p}-e3", "account_id": account, "data": {"message_id": f"{p}-m5"}},
        ]
    )
    return {"raw_ann": raw_ann, "shared": shared, "only_ann": only_ann, "raw_carl": raw_carl}


async def ids(db, collection: str) -> set[str]:
    return {d["_id"] async for d in db[collection].find({}, {"_id": 1})}


async def test_erasure_takes_the_persons_messages_and_keeps_the_others(mongo_db):
    blob = await seed(mongo_db)
    await seed(mongo_db, "acc2")
    targets = await erasure.find_targets(mongo_db, "acc1", ANN)
    assert sorted(targets[0]) == ["acc1-ann", "acc1-bob"] and sorted(targets[1]) == ["acc1-m1", "acc1-m2", "acc1-m4"]

    counts = await erasure.erase(mongo_db, "acc1", address=ANN, conversation_ids=[])
    assert counts == {
        "messages": 3,
        "conversations_deleted": 1,
        "conversations_kept": 1,
        "blobs": 2,
        "timeline": 2,
        "live_events": 2,
    }
    assert {i for i in await ids(mongo_db, MESSAGES) if i.startswith("acc1")} == {"acc1-m3", "acc1-m5"}
    assert {i for i in await ids(mongo_db, CONVERSATIONS) if i.startswith("acc1")} == {"acc1-bob", "acc1-carl"}
    bob = await mongo_db[CONVERSATIONS].find_one({"_id": "acc1-bob"})
    assert bob["participants"] == ["bob@example.net"] and bob["message_ids"] == ["acc1-m3"]
    assert ANN not in bob["terms"]
    assert await blobs.get(mongo_db, blob["raw_ann"]) is None and await blobs.get(mongo_db, blob["only_ann"]) is None
    assert await blobs.get(mongo_db, blob["shared"]) is not None  # Carl's message has the same attachment bytes
    assert {i for i in await ids(mongo_db, TIMELINE) if i.startswith("acc1")} == {"acc1-t3"}
    assert {i for i in await ids(mongo_db, LIVE_EVENTS) if i.startswith("acc1")} == {"acc1-e3"}
    # The other account's Ann is another account's business.
    assert {i for i in await ids(mongo_db, MESSAGES) if i.startswith("acc2")} == {f"acc2-m{n}" for n in range(1, 6)}

    again = await erasure.erase(mongo_db, "acc1", address=ANN, conversation_ids=targets[0])
    assert again["messages"] == 0 and again["conversations_deleted"] == 0 and again["conversations_kept"] == 0


async def test_a_rerun_after_a_crash_half_way_finishes_the_work(mongo_db):
    await seed(mongo_db)
    # As if the first run died after deleting Ann's messages of Bob's conversation but before updating it.
    await mongo_db[MESSAGES].delete_one({"_id": "acc1-m4"})
    counts = await erasure.erase(mongo_db, "acc1", address=ANN, conversation_ids=[])
    assert counts["conversations_kept"] == 1 and counts["conversations_deleted"] == 1
    bob = await mongo_db[CONVERSATIONS].find_one({"_id": "acc1-bob"})
    assert bob["participants"] == ["bob@example.net"] and bob["message_count"] == 1
    assert await erasure.find_targets(mongo_db, "acc1", ANN) == ([], [])


async def test_a_retention_erasure_takes_whole_conversations_still_past_the_window(mongo_db):
    await seed(mongo_db)
    await mongo_db[CONVERSATIONS].update_one(
        {"_id": "acc1-carl"}, {"$set": {"last_message_at": T0 + timedelta(days=9)}}
    )
    counts = await erasure.erase(
        mongo_db, "acc1", address=None, conversation_ids=["acc1-bob", "acc1-carl"], older_than=T0 + timedelta(days=1)
    )
    assert counts["conversations_deleted"] == 1 and counts["messages"] == 2
    assert {i for i in await ids(mongo_db, CONVERSATIONS)} == {"acc1-ann", "acc1-carl"}


async def test_a_request_is_created_once_while_it_runs_and_finishes_once_when_every_service_reported(mongo_db):
    await ensure_indexes(mongo_db)
    doc = {"account_id": "acc1", "type": "erase", "address": ANN, "active_key": "erase:k"}
    first, created = await requests_repo.create_once(mongo_db, dict(doc))
    second, created_again = await requests_repo.create_once(mongo_db, dict(doc))
    assert created and not created_again and second["_id"] == first["_id"]

    def report(service: str) -> DataErasurePartDone:
        return DataErasurePartDone(request_id=first["_id"], account_id="acc1", service=service, counts={"x": 1})

    for service in ("ingest", "inbox", "automation"):
        await data_requests.record_part(mongo_db, report(service), secret=b"k")
        await data_requests.record_part(mongo_db, report(service), secret=b"k")  # a redelivered report
    running = await requests_repo.get(mongo_db, "acc1", first["_id"])
    assert running["status"] == "running" and running["address"] == ANN
    # The two last reports at once: both recorded, the request finished by one of them.
    await asyncio.gather(*(data_requests.record_part(mongo_db, report(s), secret=b"k") for s in ("sender", "domains")))
    done = await requests_repo.get(mongo_db, "acc1", first["_id"])
    assert done["status"] == "done" and set(done["parts"]) == {"ingest", "inbox", "automation", "sender", "domains"}
    assert "address" not in done and "active_key" not in done
    assert done["address_hash"] == data_requests.address_hash(b"k", ANN)
    assert await requests_repo.get(mongo_db, "acc2", first["_id"]) is None
    # Done: the same address may be asked again, as a new request.
    third, created_third = await requests_repo.create_once(mongo_db, dict(doc))
    assert created_third and third["_id"] != first["_id"]


async def test_a_message_folded_in_during_the_erasure_is_kept_and_counted(mongo_db, monkeypatch):
    """The store consumer folds a new message into Bob's conversation while the erasure works on it: the guarded
    last write misses, the conversation is planned again, and the new message stays counted."""
    await seed(mongo_db)
    original = erasure._drop_timeline
    folded = []

    async def timeline_then_a_concurrent_store(db, decided, address):
        removed = await original(db, decided, address)
        if decided.conversation_id == "acc1-bob" and not folded:
            folded.append(True)
            await db[MESSAGES].insert_one(
                {
                    "_id": "acc1-m6",
                    "account_id": "acc1",
                    "stream_id": "acc1-stream",
                    "dedup_key": "m6",
                    "conversation_id": "acc1-bob",
                    "direction": "inbound",
                    "from": {"name": "", "address": "dora@example.net"},
                    "created_at": T0 + timedelta(minutes=30),
                }
            )
            await conversations_repo.record_message(
                db, "acc1-bob", message_id="acc1-m6", message_at=T0 + timedelta(minutes=30), terms=[], inbound=True
            )
        return removed

    monkeypatch.setattr(erasure, "_drop_timeline", timeline_then_a_concurrent_store)
    counts = await erasure.erase(mongo_db, "acc1", address=ANN, conversation_ids=[])
    assert folded and counts["conversations_kept"] == 1
    bob = await mongo_db[CONVERSATIONS].find_one({"_id": "acc1-bob"})
    assert bob["message_ids"] == ["acc1-m3", "acc1-m6"] and bob["message_count"] == 2
    assert bob["participants"] == ["bob@example.net"]


async def test_webhook_deliveries_naming_the_person_go_with_their_attempts_and_others_stay(mongo_db):
    """The payloads a webhook subscription was sent are kept for days: those naming the address (or an erased
    message) go, with the attempts (a receiver's reply may echo the body); another person's, and another account's
    delivery naming the same address, stay."""
    from mailstream_common.contracts import DataErasureRequested
    from mailstream_inbox.webhooks import repositories as webhooks

    await seed(mongo_db)
    await ensure_indexes(mongo_db)
    for account in ("acc1", "acc2"):
        subscription = await webhooks.create_subscription(
            mongo_db, account, url="https://hooks.example/x", event_types=["message.received"], enabled=True,
            description="", secret_sealed="sealed",
        )  # fmt: skip
        for fact, body in (
            ("ann-mail", f'{{"type": "message.received", "data": {{"from": "Ann <{ANN.upper()}>"}}}}'),
            ("ann-reply", '{"type": "message.sent", "data": {"message_id": "acc1-m-reply"}}'),
            ("bob-mail", '{"type": "message.received", "data": {"from": "bob@example.net"}}'),
        ):
            delivery, _ = await webhooks.create_delivery(
                mongo_db, subscription=subscription, event_type="message.received", fact_key=f"{account}-{fact}",
                body=body.encode(), now=T0,
            )  # fmt: skip
            await webhooks.record_attempt(
                mongo_db, {**delivery, "lease_token": "t1"}, {"status": 500, "response": body[:40]}, T0
            )

    request = DataErasureRequested(
        request_id="r1", account_id="acc1", address=ANN, conversation_ids=["acc1-ann"], message_ids=["acc1-m-reply"]
    )
    counts = await data_requests.erase_inbox_part(mongo_db, request)
    assert counts["webhook_deliveries"] == 2 and counts["webhook_attempts"] == 2

    left = {d["fact_key"] async for d in mongo_db[webhooks.DELIVERIES].find({})}
    assert left == {"acc1-bob-mail", "acc2-ann-mail", "acc2-ann-reply", "acc2-bob-mail"}
    assert await mongo_db[webhooks.ATTEMPTS].count_documents({"account_id": "acc1"}) == 1
    again = await data_requests.erase_inbox_part(mongo_db, request)  # redelivered: nothing more, no error
    assert again["webhook_deliveries"] == 0


async def test_dead_letters_naming_the_person_go_with_their_bodies(mongo_db):
    import base64
    import json

    from mailstream_common.contracts import DataErasureRequested
    from mailstream_inbox.repositories import dead_letters

    await seed(mongo_db)
    raw = base64.b64encode(f"From: {ANN}\r\n\r\nstuck".encode()).decode()
    letters = {
        "ann": ("acc1", json.dumps({"account_id": "acc1", "raw": raw})),
        "bob": ("acc1", json.dumps({"account_id": "acc1", "raw": base64.b64encode(b"From: bob@x.net").decode()})),
        "other-account": ("acc2", json.dumps({"account_id": "acc2", "raw": raw})),
    }
    for name, (account, body) in letters.items():
        await mongo_db[dead_letters.LETTERS].insert_one(
            {"_id": name, "account_id": account, "account_ids": [account], "state": "dead", "dead_at": T0}
        )
        await mongo_db[dead_letters.BODIES].insert_one({"letter_id": name, "n": 0, "data": body.encode()})

    request = DataErasureRequested(request_id="r1", account_id="acc1", address=ANN, conversation_ids=["acc1-ann"])
    counts = await data_requests.erase_inbox_part(mongo_db, request)
    assert counts["dead_letters"] == 1
    assert {d["_id"] async for d in mongo_db[dead_letters.LETTERS].find({})} == {"bob", "other-account"}
    assert {d["letter_id"] async for d in mongo_db[dead_letters.BODIES].find({})} == {"bob", "other-account"}
