"""The conversations API surface: filters, search, cursor pagination, PATCH, canned responses, email template,
roles, and tenant isolation (another account's ids answer 404 on every route of this half)."""

from datetime import UTC, datetime, timedelta

from mailstream_common.contracts import Address, ConversationChanged
from tests.inbox.conftest import create_stream
from tests.inbox.consumers.test_store import conversations_of, messages_of
from tests.support.inbox_gateway import EventTap


async def test_list_filters_search_and_cursor_pagination(account, deliver):
    support = await create_stream(account, "list-support@acme.test")
    sales = await create_stream(account, "list-sales@acme.test")
    start = datetime.now(UTC) - timedelta(hours=1)
    for i in range(7):
        await deliver(
            support,
            subject=f"Question {i}",
            text=f"body number {i} with token-{i}",
            sender=Address(name=f"Customer {i}", address=f"c{i}@example.net"),
            received_at=start + timedelta(minutes=i),
        )
    await deliver(sales, subject="Bulk order", text="Ünïcode Grüße", received_at=start + timedelta(minutes=30))
    agent = account.agent

    # Newest first, across pages, no duplicates and nothing missing.
    seen, cursor = [], None
    while True:
        params = {"limit": 3, "stream_id": support.stream_id, **({"cursor": cursor} if cursor else {})}
        page = (await agent.get("/v1/conversations", params=params)).json()
        seen += [c["subject"] for c in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"Question {i}" for i in reversed(range(7))]

    assert [c["subject"] for c in await conversations_of(agent, topic_id=sales.topic_id)] == ["Bulk order"]
    assert [c["subject"] for c in await conversations_of(agent, q="question 3")] == ["Question 3"]
    assert [c["subject"] for c in await conversations_of(agent, q="C5@EXAMPLE")] == ["Question 5"]
    assert [c["subject"] for c in await conversations_of(agent, q="customer 6")] == ["Question 6"]
    assert [c["subject"] for c in await conversations_of(agent, q="token-2")] == ["Question 2"]
    assert [c["subject"] for c in await conversations_of(agent, q="grüße")] == ["Bulk order"]
    assert await conversations_of(agent, q=".*") == []  # regex characters are literal
    assert await conversations_of(agent, q="no such words") == []

    bad = await agent.get("/v1/conversations", params={"cursor": "garbage"})
    assert bad.status_code == 422 and "cursor" in bad.text
    assert (await agent.get("/v1/conversations", params={"status": "nonsense"})).status_code == 422
    assert (await agent.get("/v1/conversations", params={"limit": 500})).status_code == 422


async def test_patch_conversation_and_filters_by_status_tag_assignee(stream, deliver, backends):
    await deliver(stream, subject="One")
    await deliver(stream, subject="Two", sender=Address(address="two@example.net"))
    one, two = sorted(
        await conversations_of(stream.account.agent, stream_id=stream.stream_id), key=lambda c: c["subject"]
    )
    agent = stream.account.agent
    async with EventTap(backends.amqp_url, [ConversationChanged]) as tap:
        response = await agent.patch(
            f"/v1/conversations/{one['id']}",
            json={"status": "closed", "tags": ["vip", "vip", "refund"], "assignee": "ann", "priority": "urgent"},
        )
        assert response.status_code == 200, response.text
        changed = await tap.next_matching(ConversationChanged, lambda e: e.conversation_id == one["id"])
    body = response.json()
    assert (body["status"], body["tags"], body["assignee"], body["priority"]) == (
        "closed",
        ["vip", "refund"],
        "ann",
        "urgent",
    )
    assert changed.changed_by == f"agent:{stream.account.agent_key_id}" and changed.status == "closed"

    assert [c["id"] for c in await conversations_of(agent, status="closed", stream_id=stream.stream_id)] == [one["id"]]
    assert [c["id"] for c in await conversations_of(agent, status="open", stream_id=stream.stream_id)] == [two["id"]]
    assert [c["id"] for c in await conversations_of(agent, tag="refund")] == [one["id"]]
    assert [c["id"] for c in await conversations_of(agent, assignee="ann")] == [one["id"]]

    unassigned = await agent.patch(f"/v1/conversations/{one['id']}", json={"assignee": None})
    assert unassigned.json()["assignee"] is None
    for bad in ({"status": "done"}, {"tags": ["a\r\nb"]}, {"status": None}, {"unknown": 1}):
        response = await agent.patch(f"/v1/conversations/{one['id']}", json=bad)
        assert response.status_code == 422, (bad, response.text)

    # A new customer message reopens a closed conversation.
    [message] = await messages_of(agent, one["id"])
    await deliver(stream, subject="Re: One", in_reply_to=message["message_id_header"])
    assert (await agent.get(f"/v1/conversations/{one['id']}")).json()["status"] == "open"


async def test_messages_are_paginated_oldest_first(stream, deliver):
    first = await deliver(stream, subject="Thread")
    previous = first.message_id_header
    for i in range(4):
        mail = await deliver(stream, subject="Re: Thread", text=f"reply {i}", in_reply_to=previous)
        previous = mail.message_id_header
    [conversation] = await conversations_of(stream.account.agent, stream_id=stream.stream_id)
    texts, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (
            await stream.account.agent.get(f"/v1/conversations/{conversation['id']}/messages", params=params)
        ).json()
        texts += [m["text"].strip() for m in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert texts == ["Hello, where is my order #1234?", "reply 0", "reply 1", "reply 2", "reply 3"]


async def test_canned_responses_crud_and_roles(account, other_account):
    admin, agent = account.admin, account.agent
    created = await admin.post(
        "/v1/canned-responses", json={"title": "Hi", "text": "Hello {{ customer.name }}", "html": "<p>Hello</p>"}
    )
    assert created.status_code == 201, created.text
    canned = created.json()
    assert {k: canned[k] for k in ("title", "text", "html", "topic_id")} == {
        "title": "Hi",
        "text": "Hello {{ customer.name }}",
        "html": "<p>Hello</p>",
        "topic_id": None,
    }
    url = f"/v1/canned-responses/{canned['id']}"
    assert (await agent.get(url)).json()["title"] == "Hi"
    assert canned["id"] in [c["id"] for c in (await agent.get("/v1/canned-responses")).json()["items"]]
    assert (await agent.post("/v1/canned-responses", json={"title": "x", "text": "y"})).status_code == 403
    assert (await agent.patch(url, json={"title": "x"})).status_code == 403
    assert (await agent.delete(url)).status_code == 403

    patched = await admin.patch(url, json={"title": "Hello there", "html": None})
    assert (patched.json()["title"], patched.json()["html"]) == ("Hello there", None)
    for bad in (
        {"title": "x", "text": "{{ broken "},
        {"title": "a\nb", "text": "x"},
        {"text": "no title"},
        {"title": "x", "text": "y", "topic_id": "0" * 32},
    ):
        response = await admin.post("/v1/canned-responses", json=bad)
        assert response.status_code == 422, (bad, response.text)
    assert (await other_account.admin.get(url)).status_code == 404
    assert (await other_account.admin.patch(url, json={"title": "mine"})).status_code == 404
    assert (await other_account.admin.delete(url)).status_code == 404
    assert (await admin.delete(url)).status_code == 204
    assert (await admin.get(url)).status_code == 404


async def test_email_template_defaults_validation_and_preview(account, other_account):
    admin, agent = account.admin, account.agent
    default = (await agent.get("/v1/email-template")).json()
    assert default["is_default"] is True and "{{ content }}" in default["html"] and "{{ content }}" in default["text"]

    for bad in (
        {"html": "<p>no slot</p>", "text": "{{ content }}"},
        {"html": "{{ content }}", "text": "none"},
        {"html": "{{ content }} {% if %}", "text": "{{ content }}"},
    ):
        response = await admin.put("/v1/email-template", json=bad)
        assert response.status_code == 422, (bad, response.text)
    assert (
        await agent.put("/v1/email-template", json={"html": "{{ content }}", "text": "{{ content }}"})
    ).status_code == 403

    saved = await admin.put(
        "/v1/email-template", json={"html": "<div class=x>{{ content }}</div>", "text": "{{ content }}\n-- Acme"}
    )
    assert saved.status_code == 200 and saved.json()["is_default"] is False
    preview = await agent.post("/v1/email-template/preview", json={"text": "Hi <Ann>\nline 2"})
    assert preview.status_code == 200, preview.text
    assert preview.json() == {
        "html": "<div class=x>Hi &lt;Ann&gt;<br>\nline 2</div>",
        "text": "Hi <Ann>\nline 2\n-- Acme",
    }
    # Each account has its own template.
    assert (await other_account.agent.get("/v1/email-template")).json()["is_default"] is True


async def test_stream_template_override(account, other_account):
    stream = await create_stream(account, "override@acme.test")
    url = f"/v1/streams/{stream.stream_id}/email-template"
    shown = (await account.agent.get(url)).json()
    assert (shown["html"], shown["signature"]) == (None, None)
    assert "{{ content }}" in shown["effective"]["html"]
    assert (await account.admin.put(url, json={"html": "{{ content }}"})).status_code == 422
    saved = await account.admin.put(url, json={"signature": "The Brand team"})
    assert saved.status_code == 200 and saved.json()["signature"] == "The Brand team"
    saved = await account.admin.put(
        url, json={"html": "<b>{{ content }}</b>", "text": "{{ content }}", "signature": "S"}
    )
    assert saved.json()["effective"]["html"] == "<b>{{ content }}</b>"
    assert (await account.agent.put(url, json={"signature": "x"})).status_code == 403
    assert (await other_account.admin.get(url)).status_code == 404
    assert (await other_account.admin.put(url, json={"signature": "x"})).status_code == 404
    assert (await other_account.admin.delete(url)).status_code == 404
    assert (await account.admin.delete(url)).status_code == 204
    assert (await account.agent.get(url)).json()["html"] is None


async def test_another_account_sees_nothing(stream, other_account, deliver):
    await deliver(stream, attachments=[("a.txt", "text/plain", b"secret")])
    [conversation] = await conversations_of(stream.account.agent, stream_id=stream.stream_id)
    [message] = await messages_of(stream.account.agent, conversation["id"])
    attachment_id = message["attachments"][0]["id"]
    for client in (other_account.admin, other_account.agent):
        assert await conversations_of(client) == []
        assert await conversations_of(client, stream_id=stream.stream_id) == []
        for method, path, body in [
            ("GET", f"/v1/conversations/{conversation['id']}", None),
            ("PATCH", f"/v1/conversations/{conversation['id']}", {"status": "closed"}),
            ("GET", f"/v1/conversations/{conversation['id']}/messages", None),
            ("POST", f"/v1/conversations/{conversation['id']}/replies", {"text": "hi"}),
            ("GET", f"/v1/messages/{message['id']}", None),
            ("GET", f"/v1/messages/{message['id']}/raw", None),
            ("GET", f"/v1/attachments/{attachment_id}", None),
            ("GET", f"/v1/streams/{stream.stream_id}/email-template", None),
        ]:
            response = await client.request(method, path, json=body)
            assert response.status_code == 404, (method, path, response.status_code)
    assert (await stream.account.agent.get(f"/v1/conversations/{conversation['id']}")).json()["status"] == "open"


async def test_every_route_needs_a_key(anonymous):
    async with anonymous:
        for path in (
            "/v1/conversations",
            "/v1/messages/x",
            "/v1/attachments/x",
            "/v1/canned-responses",
            "/v1/email-template",
        ):
            assert (await anonymous.get(path)).status_code == 401
