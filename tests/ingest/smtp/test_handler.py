"""The SMTP hooks: RCPT and DATA replies by name, refusals when the lookup or the broker is down, draining."""

import asyncio

import pytest
from aiosmtpd.smtp import Envelope, Session

from mailstream_common.contracts import MailReceived
from mailstream_ingest.recipients import RecipientDirectory, StreamCache
from mailstream_ingest.smtp import handler as smtp_handler
from tests.ingest.fakes import DOMAIN, SECRET, Clock, FakeStreams, target


@pytest.fixture
def setup():
    clock, streams = Clock(), FakeStreams()
    cache = StreamCache(streams, positive_ttl=60, negative_ttl=5, clock=clock)
    return clock, streams, cache


async def _transaction(handler: smtp_handler.IngestHandler, rcpts: list[str]) -> tuple[list[str], str | None]:
    session, envelope = Session(asyncio.get_running_loop()), Envelope()
    session.peer = ("192.0.2.1", 1234)
    await handler.handle_MAIL(None, session, envelope, "a@b.example", [])
    replies = [await handler.handle_RCPT(None, session, envelope, r, []) for r in rcpts]
    if not envelope.rcpt_tos:
        return replies, None
    envelope.original_content = b"Subject: x\r\n\r\nbody\r\n"
    return replies, await handler.handle_DATA(None, session, envelope)


async def test_handler_replies(setup):
    _, streams, cache = setup
    streams.live["a@in.mailstream.test"] = target("a@in.mailstream.test", "s1")
    streams.live["b@in.mailstream.test"] = target("b@in.mailstream.test", "s2")
    published: list[MailReceived] = []

    async def publish(event: MailReceived) -> None:
        published.append(event)

    handler = smtp_handler.IngestHandler(
        RecipientDirectory(cache, verp_secret=SECRET, bounce_domain=DOMAIN), publish, max_recipients=3
    )
    replies, data = await _transaction(
        handler,
        [
            "a@in.mailstream.test",
            "x@in.mailstream.test",
            "b@in.mailstream.test",
            "a@in.mailstream.test",
            "b@in.mailstream.test",
        ],
    )
    assert replies == [
        smtp_handler.RCPT_OK,
        smtp_handler.NO_SUCH_USER,
        smtp_handler.RCPT_OK,
        smtp_handler.RCPT_OK,
        smtp_handler.RCPT_OK,
    ]
    [event] = published
    assert data == smtp_handler.accepted(event.mail_id)
    assert [t.stream_id for t in event.targets] == ["s1", "s2"]
    assert event.envelope.rcpt_to == ["a@in.mailstream.test", "b@in.mailstream.test"]
    assert event.envelope.client_ip == "192.0.2.1"


async def test_handler_refuses_when_not_durable_or_lookup_down(setup):
    _, streams, cache = setup
    streams.live["a@in.mailstream.test"] = target("a@in.mailstream.test")

    async def failing(event: MailReceived) -> None:
        raise ConnectionError("broker down")

    handler = smtp_handler.IngestHandler(
        RecipientDirectory(cache, verp_secret=SECRET, bounce_domain=DOMAIN), failing, max_recipients=3
    )
    replies, data = await _transaction(handler, ["a@in.mailstream.test"])
    assert (replies, data) == ([smtp_handler.RCPT_OK], smtp_handler.NOT_DURABLE)
    streams.down = True
    replies, _ = await _transaction(handler, ["other@in.mailstream.test"])
    assert replies == [smtp_handler.LOOKUP_UNAVAILABLE]
    handler.draining = True
    session, envelope = Session(asyncio.get_running_loop()), Envelope()
    assert await handler.handle_MAIL(None, session, envelope, "a@b.example", []) == smtp_handler.SHUTTING_DOWN
