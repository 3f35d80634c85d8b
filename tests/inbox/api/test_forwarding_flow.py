"""The forwarding check across both halves of the inbox over real AMQP: the API's test-mail request, then the
analysed mail coming back (as ingest publishes it) marks the stream verified and never becomes a conversation."""

import hashlib
from datetime import UTC, datetime

from mailstream_common.contracts import Address, MailAnalysed, ReplyRequested
from mailstream_common.contracts.mail import Envelope, ForwardInfo, StreamTarget
from tests.support.inbox_gateway import EventTap
from tests.support.waiting import wait_for


def returned_test_mail(account_id: str, stream: dict, request: ReplyRequested, method: str | None) -> MailAnalysed:
    token = request.extra_headers["X-Mailstream-Forwarding-Test"]
    raw = (
        f"From: Mailstream forwarding check <{request.from_.address}>\r\n"
        f"To: {stream['address']}\r\n"
        f"Subject: {request.subject}\r\n"
        f"Message-ID: {request.message_id_header}\r\n"
        f"X-Mailstream-Forwarding-Test: {token}\r\n\r\n{request.text}"
    ).encode()
    forwarded = None
    if method is not None:
        forwarded = ForwardInfo(
            method=method,
            by=Address(address=stream["address"]),
            original_from=request.from_,
            detected_by="test",
        )
    return MailAnalysed(
        mail_id=request.message_id,
        received_at=datetime.now(UTC),
        envelope=Envelope(mail_from=stream["address"], rcpt_to=[stream["forwarding_address"]]),
        targets=[
            StreamTarget(
                forwarding_address=stream["forwarding_address"],
                stream_id=stream["id"],
                account_id=account_id,
            )
        ],
        raw=raw,
        raw_sha256=hashlib.sha256(raw).hexdigest(),
        message_id_header=request.message_id_header,
        subject=request.subject,
        **{"from": request.from_},
        to=[Address(address=stream["address"])],
        text=request.text,
        customer=request.from_,
        forwarded=forwarded,
        forwarding_test_token=token,
    )


async def test_the_test_mail_coming_back_verifies_the_stream_and_stays_out_of_the_inbox(
    inbox_gateway, backends, broker, account
):
    topic = (await account.admin.post("/v1/topics", json={"name": "Support"})).json()
    stream = (await account.admin.post(f"/v1/topics/{topic['id']}/streams", json={"address": "help@acme.com"})).json()
    async with EventTap(backends.amqp_url, [ReplyRequested]) as tap:
        assert (await account.admin.post(f"/v1/streams/{stream['id']}/verify-forwarding")).status_code == 202
        request = await tap.next_matching(ReplyRequested, lambda e: e.stream_id == stream["id"])

    await broker.publish(returned_test_mail(account.account_id, stream, request, "forward_attached"))

    async def verified():
        body = (await account.admin.get(f"/v1/streams/{stream['id']}")).json()
        return body if body["forwarding_verified"] else None

    shown = await wait_for(verified, what="the stream to be marked verified")
    assert shown["forwarding_check"]["method"] == "forward_attached"
    assert shown["forwarding_check"]["advice"], "an admin whose rule forwards is told to redirect"
    conversations = (await account.agent.get("/v1/conversations", params={"stream_id": stream["id"]})).json()
    assert conversations["items"] == []
