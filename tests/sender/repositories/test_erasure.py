"""Sender's part of an erasure on the real database: delivery records and stored mail of the listed messages or
sent to the address, the suppression entry deleted or kept as a keyed hash that still refuses the address."""

from datetime import UTC, datetime, timedelta

from mailstream_common.contracts import DataErasureRequested
from mailstream_common.mongo import ensure_indexes
from mailstream_sender.caches import SuppressionCache
from mailstream_sender.repositories import INDEXES, erasure
from mailstream_sender.repositories.deliveries import Deliveries
from mailstream_sender.repositories.mails import Mails
from mailstream_sender.repositories.suppressions import Suppressions

ANN = "ann@example.org"
SECRET = b"verp secret"
LATER = datetime.now(UTC) + timedelta(days=1)


async def seed(db) -> Suppressions:
    await ensure_indexes(db, INDEXES)
    deliveries, mails, suppressions = Deliveries(db), Mails(db), Suppressions(db)
    suppressions.hash_secret = SECRET
    for message_id, account, recipients in (
        ("m1", "acc1", [ANN]),  # listed by inbox
        ("m2", "acc1", ["bob@example.net", ANN]),  # not listed, found by its recipients
        ("m3", "acc1", ["bob@example.net"]),
        ("m4", "acc2", [ANN]),  # another account's
    ):
        await deliveries.begin_attempt(message_id, account, recipients)
        await mails.keep(message_id, account, f"To: {', '.join(recipients)}\r\n\r\nhi".encode(), "", expires_at=LATER)
    await suppressions.record_hard_bounce("acc1", ANN, "m1", f"550 <{ANN}> unknown", threshold=1)
    await suppressions.record_hard_bounce("acc2", ANN, "m4", "550 unknown", threshold=1)
    return suppressions


def request(**fields) -> DataErasureRequested:
    return DataErasureRequested(request_id="r1", account_id="acc1", address=ANN, message_ids=["m1"], **fields)


async def test_erasure_removes_records_mail_and_suppression_of_the_address_in_the_account(mongo_db):
    await seed(mongo_db)
    counts = await erasure.erase(mongo_db, request(), hash_secret=SECRET)
    assert counts == {"deliveries": 2, "signed_mails": 2, "suppressions": 1}
    assert {d["_id"] async for d in mongo_db["sender_deliveries"].find()} == {"m3", "m4"}
    assert {d["_id"] async for d in mongo_db["sender_mails"].find()} == {"m3", "m4"}
    assert [d["account_id"] async for d in mongo_db["sender_suppressions"].find()] == ["acc2"]
    again = await erasure.erase(mongo_db, request(), hash_secret=SECRET)
    assert again == {"deliveries": 0, "signed_mails": 0, "suppressions": 0}


async def test_a_kept_suppression_holds_only_a_hash_and_still_refuses_the_address(mongo_db):
    suppressions = await seed(mongo_db)
    counts = await erasure.erase(mongo_db, request(keep_suppression=True), hash_secret=SECRET)
    assert counts["suppressions_hashed"] == 1
    [kept] = [d async for d in mongo_db["sender_suppressions"].find({"account_id": "acc1"})]
    assert ANN not in str(kept).lower() and kept["address"].startswith("hmac-sha256:")
    assert [s.address for s in await suppressions.find("acc1", ["ANN@example.org"])] == [kept["address"]]
    cache = SuppressionCache(suppressions, ttl_seconds=60)
    assert len(await cache.find("acc1", [ANN, "bob@example.net"])) == 1
    assert await cache.find("acc1", ["bob@example.net"]) == []
    # A second erasure with the hash kept finds nothing more to change.
    again = await erasure.erase(mongo_db, request(keep_suppression=True), hash_secret=SECRET)
    assert again.get("suppressions_hashed", 0) == 0 and again["suppressions"] == 0
