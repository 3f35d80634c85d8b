"""Reply chains end to end: agent replies (202 -> reply.requested), the customer's answer threads back, subject
fallback with Japanese prefixes, newsletter replies kept apart, templates and signatures, 409 when not allowed."""

from mailstream_common.contracts import Address, ReplyRequested
from tests.inbox.conftest import create_stream
from tests.inbox.consumers.test_store import conversations_of, messages_of
from tests.inbox.mail import new_message_id
from tests.support.inbox_gateway import EventTap


async def only_conversation(stream):
    [conversation] = await conversations_of(stream.account.agent, stream_id=stream.stream_id)
    return conversation


async def reply(stream, conversation_id, backends, **body):
    async with EventTap(backends.amqp_url, [ReplyRequested]) as tap:
        response = await stream.account.agent.post(f"/v1/conversations/{conversation_id}/replies", json=body)
        assert response.status_code == 202, response.text
        assert response.json()["status"] == "queued"
        request = await tap.next_matching(ReplyRequested, lambda e: e.message_id == response.json()["message_id"])
    return request


async def test_reply_chain_stays_in_one_conversation(stream, deliver, backends):
    first = await deliver(stream, subject="Order 77 missing", text="Where is it?")
    conversation = await only_conversation(stream)

    request = await reply(stream, conversation["id"], backends, text="It ships today.")
    assert [a.address for a in request.to] == ["ann@example.net"]
    assert request.from_.address == stream.address
    assert request.subject == "Re: Order 77 missing"
    assert request.in_reply_to == first.message_id_header
    assert request.references == [first.message_id_header]
    assert request.message_id_header.endswith("@in.mailstream.test>")
    assert request.kind == "reply" and request.requested_by.startswith("agent:")
    assert request.template is not None and "{{ content }}" in request.template.html
    assert request.text == "It ships today."

    # The customer answers our reply: In-Reply-To is our Message-ID.
    await deliver(
        stream,
        subject="Re: Order 77 missing",
        in_reply_to=request.message_id_header,
        references=[first.message_id_header, request.message_id_header],
    )
    # A reply whose In-Reply-To was mangled but whose References still name our message.
    await deliver(
        stream,
        subject="RE: Order 77 missing",
        in_reply_to=new_message_id("mangled.test"),
        references=[request.message_id_header],
    )
    # Through a provider that rewrote our Message-ID: nothing matches, the subject and customer do (Japanese prefix).
    await deliver(stream, subject="返信: Order 77 missing", in_reply_to=new_message_id("rewritten.test"))
    # Same but with full-width colon and stacked prefixes, no reply headers at all.
    await deliver(stream, subject="Re：転送：Order 77 missing", message_id="new")

    conversation = await only_conversation(stream)
    assert conversation["message_count"] == 6
    messages = await messages_of(stream.account.agent, conversation["id"])
    assert [m["direction"] for m in messages] == ["inbound", "outbound", "inbound", "inbound", "inbound", "inbound"]
    outbound = messages[1]
    assert outbound["delivery"]["status"] == "queued"
    assert outbound["message_id_header"] == request.message_id_header

    # The next reply threads on the newest customer message.
    second = await reply(stream, conversation["id"], backends, text="Anything else?")
    assert second.in_reply_to == messages[-1]["message_id_header"]
    assert second.subject == "Re: Order 77 missing"


async def test_newsletter_replies_from_different_people_stay_apart(stream, deliver):
    newsletter_id = new_message_id("news.acme.test")
    for name in ("ann", "bob", "cem"):
        await deliver(
            stream,
            subject="Re: Our autumn sale",
            sender=Address(name=name.title(), address=f"{name}@example.net"),
            in_reply_to=newsletter_id,
            references=[newsletter_id],
        )
    conversations = await conversations_of(stream.account.agent, stream_id=stream.stream_id)
    assert sorted(c["customer"]["address"] for c in conversations) == [
        "ann@example.net",
        "bob@example.net",
        "cem@example.net",
    ]
    assert all(c["message_count"] == 1 for c in conversations)


async def test_new_topic_sent_as_reply_follows_references(stream, deliver):
    """Documented choice: References that name our stored ids win over an edited subject (agents keep context)."""
    first = await deliver(stream, subject="Invoice question")
    await deliver(stream, subject="A totally different problem", in_reply_to=first.message_id_header)
    conversation = await only_conversation(stream)
    assert conversation["message_count"] == 2


async def test_replies_use_canned_responses_templates_and_signatures(account, deliver, backends):
    stream = await create_stream(account, "brand@acme.test")
    await deliver(stream, subject="Hello", sender=Address(name="Dana", address="dana@example.net"))
    conversation = await only_conversation(stream)
    canned = await account.admin.post(
        "/v1/canned-responses",
        json={
            "title": "Thanks",
            "text": "Hi {{ customer.name }}, {{ agent.name }} here about {{ conversation.subject }}.{{ nope }}",
            "html": "<p>Hi {{ customer.name }}</p>",
        },
    )
    assert canned.status_code == 201, canned.text
    put = await account.admin.put(
        "/v1/email-template", json={"html": "<main>{{ content }}</main>", "text": "{{ content }}\n-- account"}
    )
    assert put.status_code == 200, put.text

    request = await reply(stream, conversation["id"], backends, canned_response_id=canned.json()["id"])
    assert request.text == "Hi Dana, agent here about Hello."
    assert request.html == "<p>Hi Dana</p>"
    assert request.template.html == "<main>{{ content }}</main>"

    override = await account.admin.put(
        f"/v1/streams/{stream.stream_id}/email-template",
        json={
            "html": "<brand>{{ content }} {{ stream.address }}</brand>",
            "text": "{{ content }}",
            "signature": "Brand team",
        },
    )
    assert override.status_code == 200, override.text
    request = await reply(stream, conversation["id"], backends, text="Plain words {{ customer.name }}")
    assert request.template.html == "<brand>{{ content }} brand@acme.test</brand>"
    assert request.text == "Plain words {{ customer.name }}\n\n-- \nBrand team\n"

    request = await reply(stream, conversation["id"], backends, text="No template", apply_template=False)
    assert request.template is None

    request = await reply(stream, conversation["id"], backends, text="cc too", cc=[{"address": "boss@acme.test"}])
    assert [a.address for a in request.cc] == ["boss@acme.test"]


async def test_reply_refused_when_the_stream_may_not_send(account, deliver):
    stream = await create_stream(account, "monitor@acme.test")
    await deliver(stream)
    conversation = await only_conversation(stream)
    patched = await account.admin.patch(f"/v1/streams/{stream.stream_id}", json={"allow_agent_send": False})
    assert patched.status_code == 200, patched.text
    response = await account.agent.post(f"/v1/conversations/{conversation['id']}/replies", json={"text": "hi"})
    assert response.status_code == 409

    await account.admin.patch(f"/v1/streams/{stream.stream_id}", json={"allow_agent_send": True})
    assert (await account.admin.delete(f"/v1/streams/{stream.stream_id}")).status_code == 204
    response = await account.agent.post(f"/v1/conversations/{conversation['id']}/replies", json={"text": "hi"})
    assert response.status_code == 409
    assert len(await messages_of(account.agent, conversation["id"])) == 1


async def test_reply_payload_validation(stream, deliver):
    await deliver(stream)
    conversation = await only_conversation(stream)
    url = f"/v1/conversations/{conversation['id']}/replies"
    agent = stream.account.agent
    cases = [
        ({}, None),
        ({"text": "a", "canned_response_id": "x"}, None),
        ({"text": "a", "cc": [{"address": "x@y.test\r\nBcc: evil@z.test"}]}, "cc"),
        ({"text": "a", "cc": [{"name": "A\nB", "address": "x@y.test"}]}, "cc"),
        ({"canned_response_id": "0" * 32}, "canned_response_id"),
    ]
    for body, field in cases:
        response = await agent.post(url, json=body)
        assert response.status_code == 422, (body, response.text)
        if field:
            assert field in str(response.json()["detail"])


async def test_explicit_recipients_warnings_and_an_empty_to(stream, deliver, backends):
    first = await deliver(stream, subject="Recipients please")
    conversation = await only_conversation(stream)
    url = f"/v1/conversations/{conversation['id']}/replies"
    response = await stream.account.agent.post(
        url,
        json={"text": "Hi", "to": [{"address": "Ann@Example.net"}], "cc": [{"address": "stranger@elsewhere.test"}]},
    )
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["recipients"] == {
        "to": [{"name": "", "address": "ann@example.net"}],
        "cc": [{"name": "", "address": "stranger@elsewhere.test"}],
        "bcc": [],
    }
    assert body["warnings"] == ["cc stranger@elsewhere.test is not a participant of this conversation"]

    refused = await stream.account.agent.post(url, json={"text": "Hi", "to": []})
    assert refused.status_code == 422 and "to" in str(refused.json()["detail"])
    messages = await messages_of(stream.account.agent, conversation["id"])
    assert len(messages) == 2  # the refused reply stored nothing
    assert messages[0]["thread_reason"] == "new" and messages[0]["message_id_header"] == first.message_id_header
    assert messages[1]["thread_reason"] is None  # outbound

    # Answering the reply threads on it, and the message says so.
    request = await reply(stream, conversation["id"], backends, text="More")
    assert request.message_id_header.startswith("<ms-") and request.reply_to
    await deliver(stream, subject="Re: Recipients please", in_reply_to=request.message_id_header)
    messages = await messages_of(stream.account.agent, conversation["id"])
    assert messages[-1]["direction"] == "inbound" and messages[-1]["thread_reason"] == "in_reply_to"
