"""Search: the terms live on the conversation (never in what the API returns), a search keeps the list's filters,
order and cursor and says why each conversation matched; words match as term prefixes; redelivered mail adds no
term twice; a long thread's terms stay bounded."""

from datetime import UTC, datetime, timedelta

from mailstream_common.contracts import Address
from mailstream_inbox.repositories import conversations as conversations_repo
from tests.inbox.conftest import create_stream
from tests.inbox.consumers.test_store import conversations_of


async def search_pages(client, q: str, **params) -> list[str]:
    """Every page of `q` with one item per page (so the cursor carries the search); the subjects in order."""
    subjects, cursor = [], None
    while True:
        page = await client.get(
            "/v1/conversations", params={"q": q, "limit": 1, **params, **({"cursor": cursor} if cursor else {})}
        )
        assert page.status_code == 200, page.text
        subjects += [c["subject"] for c in page.json()["items"]]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            return subjects


async def test_search_keeps_the_list_filters_order_and_cursor_and_says_why(
    account, other_account, deliver, inbox_gateway
):
    stream = await create_stream(account, "search@acme.test")
    start = datetime.now(UTC) - timedelta(hours=1)
    for i in range(4):
        await deliver(
            stream,
            subject=f"Parcel {i}",
            text=f"my parcel number {i} is late",
            sender=Address(name=f"Buyer {i}", address=f"buyer{i}@example.net"),
            received_at=start + timedelta(minutes=i),
        )
    agent = account.agent
    conversations = await conversations_of(agent, stream_id=stream.stream_id)
    by_subject = {c["subject"]: c["id"] for c in conversations}

    for subject, conversation_id in by_subject.items():
        stored = await inbox_gateway.db[conversations_repo.COLLECTION].find_one({"_id": conversation_id})
        i = subject.split()[-1]
        assert stored["terms"] == [
            "parcel",
            i,
            "buyer",
            f"buyer{i}@example.net",
            f"buyer{i}",
            "example",
            "net",
            "my",
            "number",
            "is",
            "late",
        ]
    assert all(c["match"] is None and "terms" not in c and "message_ids" not in c for c in conversations)

    # Newest first across cursor pages, like the list; words are case-insensitive prefixes of terms.
    assert await search_pages(agent, "PARCEL number") == ["Parcel 3", "Parcel 2", "Parcel 1", "Parcel 0"]
    assert await search_pages(agent, "parc numb") == ["Parcel 3", "Parcel 2", "Parcel 1", "Parcel 0"]
    assert await search_pages(agent, "arcel") == [], "a word inside a term does not match"
    # The list's filters still apply to a search.
    patched = await agent.patch(f"/v1/conversations/{by_subject['Parcel 2']}", json={"status": "closed"})
    assert patched.status_code == 200, patched.text
    assert await search_pages(agent, "parcel number", status="closed") == ["Parcel 2"]
    assert await search_pages(agent, "parcel number", status="open") == ["Parcel 3", "Parcel 1", "Parcel 0"]
    assert await search_pages(agent, "buyer1@EXAMPLE") == ["Parcel 1"]
    assert await search_pages(agent, "number 4") == []
    assert await search_pages(agent, "#!") == []
    # Why each matched.
    [found] = await conversations_of(agent, q="Parcel buyer1 late")
    assert found["match"] == [
        {"term": "parcel", "field": "subject"},
        {"term": "buyer1", "field": "customer"},
        {"term": "late", "field": "message"},
    ]
    # Another account's conversations are not this account's results.
    assert await conversations_of(other_account.agent, q="parcel number") == []


async def test_redelivered_mail_adds_its_search_terms_once(stream, deliver, inbox_gateway):
    mail = await deliver(stream, subject="Broken zipper", text="the zipper broke", times=3)
    await deliver(stream, mail)  # and once more, after the others were handled

    [conversation] = await conversations_of(stream.account.agent, stream_id=stream.stream_id)
    assert conversation["message_count"] == 1
    stored = await inbox_gateway.db[conversations_repo.COLLECTION].find_one({"_id": conversation["id"]})
    assert stored["terms"] == [
        "broken",
        "zipper",
        "ann",
        "customer",
        "ann@example.net",
        "example",
        "net",
        "the",
        "broke",
    ]


async def test_a_long_threads_terms_stay_bounded(account, inbox_gateway):
    db, conversation_id = inbox_gateway.db, f"bounded-{account.account_id}"
    await db[conversations_repo.COLLECTION].insert_one(
        {
            "_id": conversation_id,
            "stream_id": f"stream-{conversation_id}",
            "origin_key": conversation_id,
            "message_ids": [],
            "terms": [],
        }
    )
    per_message = conversations_repo.TERMS_PER_MESSAGE
    for n in range(conversations_repo.MAX_TERMS // per_message + 3):
        terms = [f"t{n}x{i}" for i in range(per_message)]
        await conversations_repo.record_message(
            db, conversation_id, message_id=f"m{n}", message_at=datetime.now(UTC), terms=terms, inbound=True
        )
    stored = await db[conversations_repo.COLLECTION].find_one({"_id": conversation_id})
    assert stored["message_count"] == conversations_repo.MAX_TERMS // per_message + 3, "messages still count"
    assert len(stored["terms"]) == conversations_repo.MAX_TERMS, "no message added terms once it was full"
    assert len(set(stored["terms"])) == len(stored["terms"])
