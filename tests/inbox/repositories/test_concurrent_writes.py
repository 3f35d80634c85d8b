"""MongoDB's single-document atomic updates are the inbox's concurrency rule: writers fold messages into one
conversation at the same time and none is lost; a lease (publication, delivery announcement) is released only by
its owner, so a worker whose lease ran out cannot release its successor's."""

import asyncio
from datetime import UTC, datetime, timedelta

from mailstream_common.contracts import MailAnalysed, utcnow
from mailstream_common.contracts.conversations import AddTagsAction
from mailstream_inbox.consumers import actions
from mailstream_inbox.repositories import conversations as conversations_repo
from mailstream_inbox.repositories import messages as messages_repo
from tests.inbox.api.test_threading_and_replies import only_conversation
from tests.inbox.conftest import consumed, handled
from tests.inbox.consumers.test_store import conversations_of, messages_of
from tests.inbox.mail import build_mail

WRITERS = 8
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


async def test_eight_concurrent_writers_fold_messages_into_one_conversation_and_none_is_lost(account, inbox_gateway):
    db, conversation_id = inbox_gateway.db, f"folded-{account.account_id}"
    await db[conversations_repo.COLLECTION].insert_one(
        {
            "_id": conversation_id,
            "account_id": account.account_id,
            "stream_id": f"stream-{conversation_id}",
            "origin_key": conversation_id,
            "status": "closed",
            "message_count": 0,
            "message_ids": [],
            "terms": [],
            "last_message_at": T0,
            "last_inbound_at": None,
            "last_inbound_message_id": None,
        }
    )

    async def writer(n: int) -> None:
        await conversations_repo.record_message(
            db,
            conversation_id,
            message_id=f"m{n}",
            message_at=T0 + timedelta(minutes=n),
            terms=[f"word{n}", "shared"],
            inbound=n % 2 == 0,
        )

    for _ in range(2):  # and every write again at once: what redeliveries look like
        await asyncio.gather(*(writer(n) for n in range(WRITERS)))

    stored = await db[conversations_repo.COLLECTION].find_one({"_id": conversation_id})
    assert stored["message_count"] == WRITERS
    assert sorted(stored["message_ids"]) == sorted(f"m{n}" for n in range(WRITERS))
    assert sorted(stored["terms"]) == sorted(["shared", *(f"word{n}" for n in range(WRITERS))])
    assert stored["last_message_at"] == T0 + timedelta(minutes=WRITERS - 1)
    newest_inbound = max(n for n in range(WRITERS) if n % 2 == 0)
    assert stored["last_inbound_message_id"] == f"m{newest_inbound}"
    assert stored["last_inbound_at"] == T0 + timedelta(minutes=newest_inbound)
    assert stored["status"] == "open", "a customer writing again reopens it"


async def test_follow_ups_handled_at_once_all_land_in_their_conversation(stream, deliver, test_broker):
    first = await deliver(stream, subject="Several questions", text="the first one")
    follow_ups: list[MailAnalysed] = [
        build_mail(stream, subject="Re: Several questions", text=f"and number {n}", in_reply_to=first.message_id_header)
        for n in range(WRITERS)
    ]
    before = handled("inbox.store")
    for mail in follow_ups:  # published together: the consumer handles them side by side
        await test_broker.publish(mail)
    await consumed("inbox.store", before, WRITERS)

    conversation = await only_conversation(stream)
    assert conversation["message_count"] == WRITERS + 1
    listed = await messages_of(stream.account.agent, conversation["id"])
    assert sorted(m["message_id_header"] for m in listed) == sorted(m.message_id_header for m in [first, *follow_ups])
    assert await conversations_of(stream.account.agent, q="number 7") == [
        {**conversation, "match": [{"term": "number", "field": "message"}, {"term": "7", "field": "message"}]}
    ]


async def test_rules_adding_tags_at_once_from_the_same_read_keep_every_tag(account, inbox_gateway):
    db, conversation_id = inbox_gateway.db, f"tagged-{account.account_id}"
    await db[conversations_repo.COLLECTION].insert_one(
        {
            "_id": conversation_id,
            "account_id": account.account_id,
            "stream_id": f"stream-{conversation_id}",
            "origin_key": conversation_id,
            "status": "open",
            "tags": ["vip"],
        }
    )
    snapshot = await conversations_repo.get(db, account.account_id, conversation_id)
    results = await asyncio.gather(
        *(
            actions.change_fields(db, snapshot, [AddTagsAction(type="add_tags", tags=[f"rule{n}"])])
            for n in range(WRITERS)
        )
    )
    assert all(changes for _conversation, changes in results)
    stored = await conversations_repo.get(db, account.account_id, conversation_id)
    assert sorted(stored["tags"]) == sorted(["vip", *(f"rule{n}" for n in range(WRITERS))])


async def outbound_message(db, account_id: str, suffix: str) -> str:
    message_id = messages_repo.message_id_for("lease-stream", f"lease-{suffix}-{account_id}")
    await db[messages_repo.COLLECTION].insert_one(
        {
            "_id": message_id,
            "account_id": account_id,
            "stream_id": "lease-stream",
            "dedup_key": f"lease-{suffix}-{account_id}",
            "direction": "outbound",
            "delivery": {"status": "queued", "version": 0},
            "published": False,
        }
    )
    return message_id


async def test_a_publication_lease_is_released_only_by_its_owner(account, inbox_gateway):
    db = inbox_gateway.db
    message_id = await outbound_message(db, account.account_id, "publication")
    assert await messages_repo.claim_publication(db, message_id, "a", 30) == "claimed"
    assert await messages_repo.claim_publication(db, message_id, "b", 30) == "busy"
    # a's lease runs out (a lease of 0 s: every earlier one has), b takes it; a's late release leaves b's alone
    assert await messages_repo.claim_publication(db, message_id, "b", 0) == "claimed"
    await messages_repo.release_publication(db, message_id, "a")
    assert (await messages_repo.get_internal(db, message_id))["publishing"]["owner"] == "b"
    # a's confirm still counts (the event went out), and b's lease stays until b is done
    await messages_repo.mark_published(db, message_id, "a")
    after_a = await messages_repo.get_internal(db, message_id)
    assert after_a["published"] is True and after_a["publishing"]["owner"] == "b"
    await messages_repo.mark_published(db, message_id, "b")
    assert "publishing" not in await messages_repo.get_internal(db, message_id)
    assert await messages_repo.claim_publication(db, message_id, "c", 0) == "published"


async def test_eight_concurrent_claims_of_one_publication_have_one_winner(account, inbox_gateway):
    db = inbox_gateway.db
    message_id = await outbound_message(db, account.account_id, "race")
    results = await asyncio.gather(
        *(messages_repo.claim_publication(db, message_id, f"w{n}", 30) for n in range(WRITERS))
    )
    assert sorted(results) == ["busy"] * (WRITERS - 1) + ["claimed"]


async def test_a_delivery_announcement_is_released_only_by_its_owner_and_blocks_the_next_version(
    account, inbox_gateway
):
    db = inbox_gateway.db
    message_id = await outbound_message(db, account.account_id, "announcement")
    announcement = {"version": 1, "report_id": "r1", "owner": "a", "since": utcnow(), "status": "sent", "detail": ""}
    versions = await asyncio.gather(
        *(
            messages_repo.write_delivery(db, message_id, 0, {"status": "sent", "version": 1}, None, announcement)
            for _ in range(WRITERS)
        )
    )
    assert sum(v is not None for v in versions) == 1, "one write per version"
    assert await messages_repo.write_delivery(db, message_id, 1, {"status": "failed", "version": 2}, None, None) is None
    assert await messages_repo.take_announcement(db, message_id, "a", "b", utcnow()) is not None
    assert await messages_repo.take_announcement(db, message_id, "a", "c", utcnow()) is None, "taken already"
    await messages_repo.release_announcement(db, message_id, "a")
    assert (await messages_repo.get_internal(db, message_id))["delivery_announcement"]["owner"] == "b"
    await messages_repo.release_announcement(db, message_id, "b")
    written = await messages_repo.write_delivery(db, message_id, 1, {"status": "failed", "version": 2}, None, None)
    assert written is not None and written["delivery"]["version"] == 2
