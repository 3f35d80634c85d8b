"""Search after the split: the terms live in `conversation_search`, lists never read them, search keeps its filters,
order and cursor; redelivered mail adds no term twice; a conversation written before the split (terms on the
conversation itself) stays searchable and picks up new terms."""

from datetime import UTC, datetime, timedelta

from mailstream_common.contracts import Address
from mailstream_inbox.repositories import conversation_search as search_repo
from mailstream_inbox.repositories import conversations as conversations_repo

from .conftest import create_stream
from .test_storing import conversations_of


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


async def test_search_reads_its_own_collection_with_filters_order_and_cursor(
    account, other_account, deliver, inbox_gateway
):
    stream = await create_stream(account, "search-split@acme.test")
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

    # The terms are in the search collection, none on the conversations a list scans.
    for subject, conversation_id in by_subject.items():
        stored = await inbox_gateway.db[conversations_repo.COLLECTION].find_one({"_id": conversation_id})
        assert "search_terms" not in stored
        search_doc = await search_repo.get(inbox_gateway.db, conversation_id)
        assert search_doc["account_id"] == account.account_id
        i = subject.split()[-1]
        assert search_doc["terms"] == [
            f"parcel {i} buyer {i} buyer{i}@example.net",
            f"parcel {i} my parcel number {i} is late",
        ]

    # Newest first across cursor pages, like the list.
    assert await search_pages(agent, "PARCEL number") == ["Parcel 3", "Parcel 2", "Parcel 1", "Parcel 0"]
    # The list's filters still apply to a search.
    patched = await agent.patch(f"/v1/conversations/{by_subject['Parcel 2']}", json={"status": "closed"})
    assert patched.status_code == 200, patched.text
    assert await search_pages(agent, "parcel number", status="closed") == ["Parcel 2"]
    assert await search_pages(agent, "parcel number", status="open") == ["Parcel 3", "Parcel 1", "Parcel 0"]
    assert await search_pages(agent, "buyer1@EXAMPLE") == ["Parcel 1"]
    assert await search_pages(agent, "number 4") == []
    # Another account's search documents are not this account's results.
    assert await conversations_of(other_account.agent, q="parcel number") == []


async def test_redelivered_mail_adds_its_search_terms_once(stream, deliver, inbox_gateway):
    mail = await deliver(stream, subject="Broken zipper", text="the zipper broke", times=3)
    await deliver(stream, mail)  # and once more, after the others were handled

    [conversation] = await conversations_of(stream.account.agent, stream_id=stream.stream_id)
    assert conversation["message_count"] == 1
    search_doc = await search_repo.get(inbox_gateway.db, conversation["id"])
    assert search_doc["terms"] == [
        "broken zipper ann customer ann@example.net",
        "broken zipper the zipper broke",
    ]


async def test_search_terms_stay_bounded_and_unique(account, inbox_gateway):
    db, conversation_id = inbox_gateway.db, f"bounded-{account.account_id}"
    for n in range(search_repo.MAX_TERMS + 5):
        await search_repo.add_terms(db, conversation_id, account.account_id, [f"term {n}", "term 0"])
    search_doc = await search_repo.get(db, conversation_id)
    assert search_doc["terms"] == [f"term {n}" for n in range(search_repo.MAX_TERMS)]


async def test_a_conversation_written_before_the_split_stays_searchable(stream, deliver, inbox_gateway):
    db, agent = inbox_gateway.db, stream.account.agent
    first = await deliver(stream, subject="Old invoice", text="invoice 2019 missing")
    [conversation] = await conversations_of(agent, stream_id=stream.stream_id)
    # The shape written before the split: the terms on the conversation, no search document.
    search_doc = await search_repo.get(db, conversation["id"])
    await db[conversations_repo.COLLECTION].update_one(
        {"_id": conversation["id"]}, {"$set": {"search_terms": search_doc["terms"]}}
    )
    await db[search_repo.COLLECTION].delete_one({"_id": conversation["id"]})

    assert [c["id"] for c in await conversations_of(agent, q="invoice 2019")] == [conversation["id"]]
    listed = (await agent.get(f"/v1/conversations/{conversation['id']}")).json()
    assert "search_terms" not in listed

    # A reply in the thread lands in the search collection; old and new terms both find it, once.
    await deliver(
        stream, subject="Re: Old invoice", text="still waiting for the receipt", in_reply_to=first.message_id_header
    )
    [conversation] = await conversations_of(agent, stream_id=stream.stream_id)
    assert conversation["message_count"] == 2
    assert [c["id"] for c in await conversations_of(agent, q="waiting for the receipt")] == [conversation["id"]]
    assert [c["id"] for c in await conversations_of(agent, q="invoice")] == [conversation["id"]]
    assert (await search_repo.get(db, conversation["id"]))["account_id"] == stream.account.account_id
