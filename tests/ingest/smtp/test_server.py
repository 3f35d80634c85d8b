"""The SMTP listener: limits, TLS, shutdown, replicas and PROXY through real clients, and its DATA reading and
protocol shortcuts answering exactly as aiosmtpd does without them."""

import asyncio
import contextlib
import random
import subprocess
from types import SimpleNamespace

import pytest
from aiosmtpd.smtp import SMTP

from mailstream_common import topology
from mailstream_common.contracts import MailReceived
from mailstream_common.contracts.mail import StreamTarget
from mailstream_ingest.recipients import RecipientDirectory, Route, StreamCache
from mailstream_ingest.smtp.handler import IngestHandler
from mailstream_ingest.smtp.server import _PLAIN_PATH, SmtpFrontDoor, _IngestSMTP
from tests.ingest.conftest import INBOUND_DOMAIN, add_stream, run_ingest, take_messages
from tests.ingest.smtp.transfers import random_mail, stuffed
from tests.ingest.smtp_client import send
from tests.support.processes import free_port

pytestmark = pytest.mark.integration

SIMPLE = b"From: Jane <jane@customer.example>\r\nTo: support@acme.example\r\nSubject: hi\r\n\r\nHello\r\n"


async def test_unknown_recipient_and_relay_attempts_are_refused_550(smtp_only, mongo_db):
    stream = await add_stream(mongo_db)
    deleted = await add_stream(mongo_db, deleted=True)
    result = await send(
        smtp_only.smtp_port,
        "jane@customer.example",
        [f"nobody@{INBOUND_DOMAIN}", "someone@gmail.com", deleted["forwarding_address"], stream["forwarding_address"]],
        SIMPLE,
    )
    assert [code for code, _ in result.rcpt] == [550, 550, 550, 250]
    assert b"5.1.1" in result.rcpt[0][1]
    assert result.data is not None and result.data[0] == 250
    [message] = await take_messages(
        smtp_only.amqp_url, topology.INGEST_ANALYSE.name, 1, correlation_ids={result.mail_id}
    )
    received = MailReceived.model_validate_json(message.body)
    assert received.envelope.rcpt_to == [stream["forwarding_address"]]
    assert f"queued as {received.mail_id}".encode() in result.data[1]
    assert received.raw == SIMPLE and received.size == len(SIMPLE)
    assert message.correlation_id == received.mail_id


async def test_oversize_mail_is_refused_552(smtp_only, mongo_db):
    stream = await add_stream(mongo_db)
    big = SIMPLE + (b"y" * 76 + b"\r\n") * 400  # ~31 KB > 20 KB limit
    declared = await send(
        smtp_only.smtp_port, "a@b.example", [stream["forwarding_address"]], big, mail_options=[f"SIZE={len(big)}"]
    )
    assert declared.mail[0] == 552
    undeclared = await send(smtp_only.smtp_port, "a@b.example", [stream["forwarding_address"]], big)
    assert undeclared.data is not None and undeclared.data[0] == 552


async def test_too_many_recipients_452(smtp_only, mongo_db):
    streams = [await add_stream(mongo_db) for _ in range(4)]
    result = await send(smtp_only.smtp_port, "a@b.example", [s["forwarding_address"] for s in streams], SIMPLE)
    assert [code for code, _ in result.rcpt] == [250, 250, 250, 452]


async def test_session_limit_421(vhost, mongo_db, backends):
    async with run_ingest(
        vhost[1], mongo_db, backends.mongodb_uri, INGEST_ROLE="smtp", INGEST_MAX_SESSIONS=1
    ) as running:
        reader, writer = await asyncio.open_connection("127.0.0.1", running.smtp_port)
        assert (await reader.readline()).startswith(b"220")
        second_reader, second_writer = await asyncio.open_connection("127.0.0.1", running.smtp_port)
        assert (await second_reader.readline()).startswith(b"421")
        for w in (writer, second_writer):
            w.close()


async def test_line_longer_than_the_limit_is_refused(vhost, mongo_db, backends):
    async with run_ingest(
        vhost[1], mongo_db, backends.mongodb_uri, INGEST_ROLE="smtp", INGEST_MAX_LINE_LENGTH=2000
    ) as running:
        stream = await add_stream(mongo_db)
        long_line = SIMPLE + b"z" * 3000 + b"\r\n"
        result = await send(running.smtp_port, "a@b.example", [stream["forwarding_address"]], long_line)
        assert result.data is not None and result.data[0] == 500
        fine = await send(
            running.smtp_port, "a@b.example", [stream["forwarding_address"]], SIMPLE + b"z" * 1500 + b"\r\n"
        )
        assert fine.data is not None and fine.data[0] == 250


@pytest.fixture
def certificate(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", f"/CN={INBOUND_DOMAIN}",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


async def test_starttls_when_a_certificate_is_configured(vhost, mongo_db, backends, certificate):
    cert, key = certificate
    async with run_ingest(
        vhost[1],
        mongo_db,
        backends.mongodb_uri,
        INGEST_ROLE="smtp",
        INGEST_TLS_CERT_FILE=str(cert),
        INGEST_TLS_KEY_FILE=str(key),
    ) as running:
        stream = await add_stream(mongo_db)
        result = await send(running.smtp_port, "a@b.example", [stream["forwarding_address"]], SIMPLE, starttls=True)
        [message] = await take_messages(
            running.amqp_url, topology.INGEST_ANALYSE.name, 1, correlation_ids={result.mail_id}
        )
        assert MailReceived.model_validate_json(message.body).envelope.tls is True


async def test_shutdown_lets_an_open_transaction_finish(vhost, mongo_db, backends):
    async with run_ingest(vhost[1], mongo_db, backends.mongodb_uri, INGEST_ROLE="smtp") as running:
        stream = await add_stream(mongo_db)
        reader, writer = await asyncio.open_connection("127.0.0.1", running.smtp_port)

        async def command(line: bytes) -> bytes:
            writer.write(line + b"\r\n")
            await writer.drain()
            reply = await reader.readline()
            while reply[3:4] == b"-":
                reply = await reader.readline()
            return reply

        assert (await reader.readline()).startswith(b"220")
        assert (await command(b"EHLO client.example")).startswith(b"250")
        assert (await command(b"MAIL FROM:<a@b.example>")).startswith(b"250")
        assert (await command(f"RCPT TO:<{stream['forwarding_address']}>".encode())).startswith(b"250")
        running.stop.set()  # SIGTERM arrives mid-transaction

        async def listener_closed():
            try:
                _, probe = await asyncio.open_connection("127.0.0.1", running.smtp_port)
            except OSError:
                return True
            probe.close()
            return False

        from tests.support.waiting import wait_for

        await wait_for(listener_closed, timeout=5, what="the listener to stop accepting")
        assert (await command(b"DATA")).startswith(b"354")
        reply = await command(SIMPLE.rstrip(b"\r\n") + b"\r\n.")
        assert reply.startswith(b"250"), reply
        rest = await asyncio.wait_for(reader.read(), 10)  # the drained session is then closed by the server
        assert rest == b"" or rest.startswith(b"421"), rest
        writer.close()
        mail_id = reply.decode().rsplit(" ", 1)[-1].strip()
        await asyncio.wait_for(running.task, 30)
    [message] = await take_messages(vhost[1], topology.INGEST_ANALYSE.name, 1, correlation_ids={mail_id})
    assert message.correlation_id == mail_id


async def test_idle_and_slow_data_sessions_are_closed(vhost, mongo_db, backends):
    async with run_ingest(
        vhost[1], mongo_db, backends.mongodb_uri, INGEST_ROLE="smtp",
        INGEST_SMTP_TIMEOUT_SECONDS=0.5, INGEST_SMTP_DATA_TIMEOUT_SECONDS=1,
    ) as running:  # fmt: skip
        stream = await add_stream(mongo_db)
        reader, writer = await asyncio.open_connection("127.0.0.1", running.smtp_port)
        assert (await reader.readline()).startswith(b"220")
        assert await asyncio.wait_for(reader.read(), 5) == b""  # idle: closed after the command timeout
        writer.close()

        reader, writer = await asyncio.open_connection("127.0.0.1", running.smtp_port)
        await reader.readline()
        replies = []
        for line in (
            b"HELO c.example",
            b"MAIL FROM:<a@b.example>",
            f"RCPT TO:<{stream['forwarding_address']}>".encode(),
            b"DATA",
        ):
            writer.write(line + b"\r\n")
            replies.append((await reader.readline())[:3])
        assert replies == [b"250", b"250", b"250", b"354"]
        started = asyncio.get_running_loop().time()
        closed = False
        for _ in range(30):  # a line every 0.2 s: never idle, yet the whole transfer has a 1 s limit
            try:
                writer.write(b"slow line\r\n")
                await writer.drain()
            except ConnectionError:
                closed = True
                break
            with contextlib.suppress(TimeoutError):
                if await asyncio.wait_for(reader.read(), 0.2) == b"":
                    closed = True
                    break
        assert closed
        assert asyncio.get_running_loop().time() - started >= 0.9
        assert asyncio.get_running_loop().time() - started < 4
        writer.close()


async def test_two_replicas_share_the_port_and_one_stopping_loses_nothing(vhost, mongo_db, backends):
    port = free_port()
    shared = {"INGEST_ROLE": "smtp", "INGEST_SMTP_REUSE_PORT": True}
    async with run_ingest(vhost[1], mongo_db, backends.mongodb_uri, INGEST_SMTP_PORT=port, **shared) as first:
        async with run_ingest(vhost[1], mongo_db, backends.mongodb_uri, INGEST_SMTP_PORT=port, **shared) as second:
            assert first.smtp_port == second.smtp_port == port
            stream = await add_stream(mongo_db)
            before = [await send(port, "a@b.example", [stream["forwarding_address"]], SIMPLE) for _ in range(6)]
        after = await send(port, "a@b.example", [stream["forwarding_address"]], SIMPLE)  # the second replica is gone
        ids = {r.mail_id for r in [*before, after]}
        messages = await take_messages(first.amqp_url, topology.INGEST_ANALYSE.name, len(ids), correlation_ids=ids)
        assert {m.correlation_id for m in messages} == ids


async def test_proxy_protocol_gives_the_real_client_address(vhost, mongo_db, backends):
    async with run_ingest(
        vhost[1], mongo_db, backends.mongodb_uri, INGEST_ROLE="smtp", INGEST_PROXY_PROTOCOL=True
    ) as running:
        stream = await add_stream(mongo_db)
        reader, writer = await asyncio.open_connection("127.0.0.1", running.smtp_port)
        writer.write(b"PROXY TCP4 203.0.113.9 127.0.0.1 40000 25\r\n")
        assert (await reader.readline()).startswith(b"220")
        replies = []
        for line in (
            b"HELO mx.sender.example",
            b"MAIL FROM:<a@b.example>",
            f"RCPT TO:<{stream['forwarding_address']}>".encode(),
            b"DATA",
        ):
            writer.write(line + b"\r\n")
            replies.append(await reader.readline())
        writer.write(SIMPLE + b".\r\n")
        replies.append(await reader.readline())
        writer.close()
        assert [r[:3] for r in replies] == [b"250", b"250", b"250", b"354", b"250"], replies
        mail_id = replies[-1].decode().split()[-1]
        [message] = await take_messages(running.amqp_url, topology.INGEST_ANALYSE.name, 1, correlation_ids={mail_id})
        envelope = MailReceived.model_validate_json(message.body).envelope
        assert (envelope.client_ip, envelope.helo) == ("203.0.113.9", "mx.sender.example")

        no_header_reader, no_header_writer = await asyncio.open_connection("127.0.0.1", running.smtp_port)
        no_header_writer.write(b"HELO x\r\n")  # not a PROXY header: the connection is dropped, nothing is trusted
        assert await asyncio.wait_for(no_header_reader.read(), 10) == b""
        no_header_writer.close()


RCPT = "fwd-1@in.example"


async def _cached(address: str) -> Route | None:
    if address == RCPT:
        target = StreamTarget(forwarding_address=RCPT, stream_id="s1", account_id="a1", stream_address="x@acme.example")
        return Route(target, version=1)
    return None


async def _front_door(published: list[MailReceived]) -> SmtpFrontDoor:
    async def publish(event: MailReceived) -> None:
        published.append(event)

    directory = RecipientDirectory(
        StreamCache(_cached, positive_ttl=60, negative_ttl=5), verp_secret=b"t", bounce_domain="b.example"
    )
    door = SmtpFrontDoor(
        IngestHandler(directory, publish, max_recipients=5),
        host="127.0.0.1", port=0, hostname="in.example", max_message_bytes=60_000, max_line_length=2000,
        max_sessions=10, timeout=10,
    )  # fmt: skip
    await door.start()
    return door


async def _converse(port: int, chunks: list[bytes]) -> list[bytes]:
    """Send a pipelined session in the given pieces (with pauses between them); the replies, one per line."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for chunk in chunks:
        writer.write(chunk)
        await writer.drain()
        await asyncio.sleep(0.002)
    replies = []
    while not replies or not replies[-1].startswith(b"221"):
        replies.append(await asyncio.wait_for(reader.readline(), 10))
    writer.close()
    return [r for r in replies if not r.startswith(b"250-")]


@pytest.mark.parametrize("seed", range(6))
async def test_mails_split_anywhere_arrive_whole_and_pipelined_commands_after_them_are_answered(seed):
    rng = random.Random(seed)
    published: list[MailReceived] = []
    door = await _front_door(published)
    try:
        mails = [random_mail(rng) for _ in range(2)] + [b"", b"x" * 1500 + b"\r\n" + b".a\r\n" * 4000]
        session = b"EHLO c.example\r\n"
        for mail in mails:
            session += f"MAIL FROM:<a@b.example>\r\nRCPT TO:<{RCPT}>\r\nDATA\r\n".encode() + stuffed(mail)
        session += b"QUIT\r\n"
        cuts = sorted(rng.sample(range(1, len(session)), 40))
        chunks = [session[a:b] for a, b in zip([0, *cuts], [*cuts, len(session)], strict=True)]
        replies = await _converse(door.port, chunks)
        assert [r[:3] for r in replies] == [b"220", b"250"] + [b"250", b"250", b"354", b"250"] * len(mails) + [b"221"]
        assert [event.raw for event in published] == mails
    finally:
        await door.stop(1)


async def test_oversized_and_overlong_mails_are_refused_after_the_whole_transfer():
    published: list[MailReceived] = []
    door = await _front_door(published)
    try:
        head = f"EHLO c.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<{RCPT}>\r\nDATA\r\n".encode()
        again = f"MAIL FROM:<a@b.example>\r\nRCPT TO:<{RCPT}>\r\nDATA\r\n".encode()
        session = head + b"y" * 70 + b"\r\n" + (b"z" * 998 + b"\r\n") * 70 + b".\r\n"
        session += again + b"w" * 2500 + b"\r\n.\r\n" + again + b"ok\r\n.\r\nQUIT\r\n"
        replies = await _converse(door.port, [session[i : i + 4096] for i in range(0, len(session), 4096)])
        codes = [r[:3] for r in replies]
        assert codes[:10] == [b"220", b"250", b"250", b"250", b"354", b"552", b"250", b"250", b"354", b"500"]
        assert codes[10:] == [b"250", b"250", b"354", b"250", b"221"]
        assert [event.raw for event in published] == [b"ok\r\n"]
    finally:
        await door.stop(1)


PATHS = [
    "<a@b.c>", " <x@y>", "<a.b+c@d-e.f> SIZE=100 BODY=8BITMIME", "<a@b.c>  SIZE=1  ", "<fwd-1@in.mailstream.test>",
    '<"q x"@b.c>', "<a@[1.2.3.4]>", "<a..b@c>", "<.a@b>", "<a@b> (comment)", "<>", "<a@b.c>x", "<a@b.c> SIZE=1 (c)",
    "<@route:a@b.c>", "a@b.c", "<a@b.c> <x>", "<ü@b.c>", "<a@b.c>\tSIZE=5",
]  # fmt: skip


class _Handler:
    pass


@pytest.mark.parametrize("path", PATHS)
def test_plain_paths_parse_as_aiosmtpd_parses_them(path):
    loop = asyncio.new_event_loop()
    try:
        reference = SMTP._getaddr(SMTP(_Handler(), loop=loop, hostname="x"), path)
    finally:
        loop.close()
    plain = _PLAIN_PATH.fullmatch(path)
    if plain is not None:  # anything else goes to aiosmtpd's own parser
        assert (plain.group(1), plain.group(2) or "") == reference


async def test_a_multi_line_reply_goes_out_whole_and_single_lines_at_once():

    written: list[bytes] = []

    class Writer:
        def write(self, data: bytes) -> None:
            written.append(data)

        async def drain(self) -> None:
            pass

    protocol = object.__new__(_IngestSMTP)
    protocol._pending_lines = []
    protocol._writer = Writer()
    protocol.enable_SMTPUTF8 = True
    protocol.session = SimpleNamespace(peer=("127.0.0.1", 1))
    for line in ("250-in.example", "250-SIZE 100", "250 HELP", "250-a\r\n250 b", "354 go"):
        await protocol.push(line)
    assert written == [b"250-in.example\r\n250-SIZE 100\r\n250 HELP\r\n", b"250-a\r\n250 b\r\n", b"354 go\r\n"]
