"""Analysed mail published on the real broker shows up through the real HTTP API: conversations, messages, raw
bytes, attachments, sanitised HTML; duplicates and redeliveries never store twice; set-up mail never shows."""

from mailstream_common.contracts import Address, MessageStored
from mailstream_common.contracts.mail import ForwardInfo, ProviderConfirmation
from mailstream_inbox import metrics
from tests.inbox.conftest import create_stream
from tests.inbox.mail import build_mail
from tests.support.inbox_gateway import EventTap
from tests.support.waiting import wait_for


async def conversations_of(client, **params):
    response = await client.get("/v1/conversations", params=params)
    assert response.status_code == 200, response.text
    return response.json()["items"]


async def messages_of(client, conversation_id):
    response = await client.get(f"/v1/conversations/{conversation_id}/messages")
    assert response.status_code == 200, response.text
    return response.json()["items"]


async def test_mail_becomes_a_conversation_with_its_message(stream, deliver, backends):
    async with EventTap(backends.amqp_url, [MessageStored]) as tap:
        mail = await deliver(stream, subject="Re: Where is my order?", text="Hello, order #1234 please")
        stored = await tap.next_matching(MessageStored, lambda e: e.stream_id == stream.stream_id)
    agent = stream.account.agent
    [conversation] = await conversations_of(agent, stream_id=stream.stream_id)
    assert conversation["subject"] == "Where is my order?"
    assert conversation["customer"] == {"name": "Ann Customer", "address": "ann@example.net"}
    assert (conversation["status"], conversation["message_count"]) == ("open", 1)
    assert stored.conversation_id == conversation["id"] and stored.is_first_message
    assert stored.topic_id == stream.topic_id and stored.direction == "inbound"

    [message] = await messages_of(agent, conversation["id"])
    assert message["id"] == stored.message_id
    assert message["direction"] == "inbound"
    assert message["from"] == {"name": "Ann Customer", "address": "ann@example.net"}
    assert message["message_id_header"] == mail.message_id_header
    assert message["text"].strip() == "Hello, order #1234 please"
    assert message["authentication"] == {"spf": "none", "dkim": "none", "dmarc": "none"}
    assert message["forwarded"] is None and message["delivery"] is None
    detail = (await agent.get(f"/v1/messages/{message['id']}")).json()
    assert {"name": "Subject", "value": "Re: Where is my order?"} in detail["headers"]

    stream_doc = (await agent.get(f"/v1/streams/{stream.stream_id}")).json()
    assert stream_doc["status"] == "receiving"


async def test_redelivered_and_resent_mail_is_stored_once(stream, deliver):
    latencies_before = stored_latency_count()
    mail = await deliver(stream, times=3)  # the same event three times: broker redelivery
    resent = build_mail(stream, message_id=mail.message_id_header, text="sent again by the client")
    await deliver(stream, resent)  # a re-sent mail: same stream and Message-ID, other bytes
    no_id = build_mail(stream, message_id=None, subject="No id at all")
    await deliver(stream, no_id, times=2)  # no Message-ID: the raw digest is the key

    items = await conversations_of(stream.account.agent, stream_id=stream.stream_id)
    assert sorted(c["message_count"] for c in items) == [1, 1]
    for conversation in items:
        assert len(await messages_of(stream.account.agent, conversation["id"])) == 1
    # The dashboard's and the alerts' numbers count stored mails, not deliveries.
    assert metrics.MAILS_STORED.labels(stream.stream_id)._value.get() == 2
    assert stored_latency_count() == latencies_before + 2


def stored_latency_count() -> float:
    [sample] = [s for m in metrics.RECEIVED_TO_STORED_SECONDS.collect() for s in m.samples if s.name.endswith("_count")]
    return sample.value


async def test_raw_download_is_byte_identical_and_attachments_download(stream, deliver):
    pdf = b"%PDF-1.4\n" + bytes(range(256)) * 40
    mail = await deliver(
        stream,
        attachments=[("Rechnung März.pdf", "application/pdf", pdf), ("notes.txt", "text/plain", b"line 1\nline 2\n")],
    )
    agent = stream.account.agent
    [conversation] = await conversations_of(agent, stream_id=stream.stream_id)
    [message] = await messages_of(agent, conversation["id"])
    raw = await agent.get(f"/v1/messages/{message['id']}/raw")
    assert raw.status_code == 200
    assert raw.headers["content-type"] == "message/rfc822"
    assert raw.content == mail.raw

    by_name = {a["filename"]: a for a in message["attachments"]}
    assert set(by_name) == {"Rechnung März.pdf", "notes.txt"}
    assert by_name["Rechnung März.pdf"]["size"] == len(pdf)
    download = await agent.get(f"/v1/attachments/{by_name['Rechnung März.pdf']['id']}")
    assert download.status_code == 200
    assert download.content == pdf
    assert download.headers["content-type"] == "application/pdf"
    assert download.headers["content-disposition"].startswith("attachment;")
    assert "Rechnung%20M%C3%A4rz.pdf" in download.headers["content-disposition"]
    assert download.headers["x-content-type-options"] == "nosniff"


async def test_html_is_sanitised_before_anyone_sees_it(stream, deliver):
    html = (
        '<p onclick="steal()">Hi</p><script>alert(1)</script><img src="x" onerror="alert(2)">'
        '<img src="https://tracker.test/pixel.gif"><a href="javascript:alert(3)">link</a><b>kept</b>'
    )
    await deliver(stream, html=html)
    agent = stream.account.agent
    [conversation] = await conversations_of(agent, stream_id=stream.stream_id)
    [message] = await messages_of(agent, conversation["id"])
    for returned in (message["html"], (await agent.get(f"/v1/messages/{message['id']}")).json()["html"]):
        lowered = returned.lower()
        for forbidden in ("<script", "onerror", "onclick", "javascript:", "tracker.test", "alert("):
            assert forbidden not in lowered
        assert "<b>kept</b>" in returned
    assert message["remote_images_blocked"] == 2


async def test_forwarded_mail_belongs_to_the_original_sender(stream, deliver):
    forwarder = Address(name="Acme Support", address="support@acme.test")
    customer = Address(name="Carl", address="carl@example.org")
    await deliver(
        stream,
        sender=forwarder,
        customer=customer,
        subject="Fwd: broken zipper",
        forwarded=ForwardInfo(method="forward_inline", by=forwarder, original_from=customer, detected_by="test"),
    )
    [conversation] = await conversations_of(stream.account.agent, stream_id=stream.stream_id)
    assert conversation["customer"] == {"name": "Carl", "address": "carl@example.org"}
    [message] = await messages_of(stream.account.agent, conversation["id"])
    assert message["forwarded"]["original_from"]["address"] == "carl@example.org"
    assert message["forwarded"]["by"]["address"] == "support@acme.test"


async def test_set_up_mail_never_becomes_a_conversation(account, deliver, backends):
    stream = await create_stream(account, "setup@acme.test")
    from mailstream_common.contracts import ReplyRequested

    async with EventTap(backends.amqp_url, [ReplyRequested]) as tap:
        response = await account.admin.post(f"/v1/streams/{stream.stream_id}/verify-forwarding")
        assert response.status_code == 202, response.text
        request = await tap.next_matching(ReplyRequested, lambda e: e.stream_id == stream.stream_id)
    token = next(v for k, v in request.extra_headers.items() if k.lower() == "x-mailstream-forwarding-test")
    await deliver(stream, forwarding_test_token=token, subject=request.subject)
    await deliver(
        stream,
        subject="Gmail Forwarding Confirmation",
        provider_confirmation=ProviderConfirmation(provider="gmail", code="123456", requested_by="support@acme.test"),
    )
    shown = (await account.admin.get(f"/v1/streams/{stream.stream_id}")).json()
    assert shown["forwarding_verified"] is True
    assert shown["provider_confirmation"]["code"] == "123456"
    assert await conversations_of(account.agent, stream_id=stream.stream_id) == []


async def test_mail_for_a_deleted_stream_is_dropped(account, deliver):
    stream = await create_stream(account, "gone@acme.test")
    assert (await account.admin.delete(f"/v1/streams/{stream.stream_id}")).status_code == 204
    await deliver(stream)
    assert await conversations_of(account.agent, stream_id=stream.stream_id) == []


async def test_stored_message_is_announced_once_even_when_redelivered(stream, deliver, backends):
    async with EventTap(backends.amqp_url, [MessageStored]) as tap:
        mail = await deliver(stream, times=2)
        marker = await deliver(stream, subject="marker")
        seen = []

        async def until_marker():
            event = await tap.next_matching(MessageStored, lambda e: e.stream_id == stream.stream_id, timeout=10)
            seen.append(event)
            return event.subject == marker.subject and len(seen) >= 2

        await wait_for(until_marker, timeout=15, what="both announcements")
    assert sorted(e.subject for e in seen) == sorted([mail.subject, "marker"]), [
        (e.message_id, e.conversation_id, e.event_id) for e in seen
    ]
