"""The SMTP front door through a real client (smtplib), real RabbitMQ and ingest's real `stream_routes` projection."""

import asyncio
import base64
import contextlib
import hashlib
import subprocess

import httpx
import pytest

from mailstream_common import topology, verp
from mailstream_common.broker import Broker
from mailstream_common.contracts import DeliveryReported, MailAnalysed, MailReceived, StreamChanged
from tests.ingest.conftest import INBOUND_DOMAIN, VERP_SECRET, add_stream, run_ingest, take_messages
from tests.ingest.fixtures import eml
from tests.ingest.smtp_client import send
from tests.support.processes import free_port

pytestmark = pytest.mark.integration

SIMPLE = b"From: Jane <jane@customer.example>\r\nTo: support@acme.example\r\nSubject: hi\r\n\r\nHello\r\n"


@pytest.fixture
async def smtp_only(vhost, mongo_db, backends):
    async with run_ingest(
        vhost[1],
        mongo_db,
        backends.mongodb_uri,
        INGEST_ROLE="smtp",
        INGEST_MAX_MESSAGE_BYTES=20_000,
        INGEST_MAX_RECIPIENTS=3,
    ) as running:
        yield running


@pytest.fixture
async def full(vhost, mongo_db, backends):
    async with run_ingest(vhost[1], mongo_db, backends.mongodb_uri, INGEST_ROLE="all") as running:
        yield running


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


async def test_new_stream_is_accepted_as_soon_as_its_event_arrives_and_refused_once_deleted(vhost, mongo_db, backends):
    async with run_ingest(
        vhost[1], mongo_db, backends.mongodb_uri, INGEST_ROLE="smtp", INGEST_NEGATIVE_CACHE_SECONDS=600
    ) as running:
        address = f"fwd-new-stream@{INBOUND_DOMAIN}"
        before = await send(running.smtp_port, "a@b.example", [address], SIMPLE)
        assert before.rcpt[0][0] == 550  # and now cached as absent for 10 minutes
        stream = await add_stream(mongo_db)
        await mongo_db["stream_routes"].update_one({"_id": stream["_id"]}, {"$set": {"forwarding_address": address}})
        event = StreamChanged(
            change="created", version=1, account_id=stream["account_id"], topic_id=stream["topic_id"],
            stream_id=stream["_id"], address=stream["address"], forwarding_address=address, allow_agent_send=True,
        )  # fmt: skip
        publisher = Broker(vhost[1], service="tests")
        await publisher.connect()
        try:
            await publisher.publish(event)

            async def accepted():
                return (await send(running.smtp_port, "a@b.example", [address], SIMPLE)).rcpt[0][0] == 250

            from tests.support.waiting import wait_for

            await wait_for(accepted, timeout=10, what="RCPT accepted after stream.changed")
            await mongo_db["stream_routes"].update_one({"_id": stream["_id"]}, {"$set": {"live": False}})
            await publisher.publish(event.model_copy(update={"change": "deleted", "deleted": True, "version": 2}))

            async def refused():
                return (await send(running.smtp_port, "a@b.example", [address], SIMPLE)).rcpt[0][0] == 550

            await wait_for(refused, timeout=10, what="RCPT refused after deletion")
        finally:
            await publisher.close()


async def test_mail_to_two_streams_is_one_analysed_event_with_two_targets(full, mongo_db):
    first = await add_stream(mongo_db)
    second = await add_stream(mongo_db, address="info@other.example")
    result = await send(
        full.smtp_port, "jane@customer.example", [first["forwarding_address"], second["forwarding_address"]], SIMPLE
    )
    assert result.data is not None and result.data[0] == 250
    [message] = await take_messages(full.amqp_url, topology.INBOX_STORE.name, 1, correlation_ids={result.mail_id})
    analysed = MailAnalysed.model_validate_json(message.body)
    assert {t.stream_id for t in analysed.targets} == {first["_id"], second["_id"]}
    assert analysed.customer is not None and analysed.customer.address == "jane@customer.example"
    assert analysed.raw == SIMPLE


@pytest.mark.parametrize(
    ("fixture", "customer"),
    [
        ("gmail_forward.eml", "jane@customer.example"),
        ("outlook_desktop_forward_ja.eml", "hanako.sato@example.co.jp"),
        ("outlook_web_forward.eml", "carlos@customer.example"),
        ("apple_mail_forward.eml", "mary.major@customer.example"),
        ("thunderbird_forward.eml", "ken.tanaka@customer.example"),
        ("attached_forward.eml", "dana@customer.example"),
    ],
)
async def test_forwarded_mail_is_analysed_to_the_customer(full, mongo_db, fixture, customer):
    stream = await add_stream(mongo_db)
    raw = eml(fixture, **{"fwd-7f3a@in.mailstream.test": stream["forwarding_address"]})
    result = await send(full.smtp_port, "support@acme.example", [stream["forwarding_address"]], raw)
    assert result.data is not None and result.data[0] == 250
    [message] = await take_messages(full.amqp_url, topology.INBOX_STORE.name, 1, correlation_ids={result.mail_id})
    analysed = MailAnalysed.model_validate_json(message.body)
    assert analysed.customer is not None and analysed.customer.address == customer
    assert analysed.forwarded is not None and analysed.forwarded.by.address == "support@acme.example"
    assert analysed.raw == raw


async def test_confirmation_and_broken_mail_are_surfaced(full, mongo_db):
    stream = await add_stream(mongo_db)
    mail_ids = set()
    for fixture in ("gmail_forwarding_confirmation.eml", "broken_mime.eml", "raw_8bit_headers_sjis.eml"):
        result = await send(full.smtp_port, "x@google.com", [stream["forwarding_address"]], eml(fixture))
        mail_ids.add(result.mail_id)
    messages = await take_messages(full.amqp_url, topology.INBOX_STORE.name, 3, correlation_ids=mail_ids)
    by_subject = {a.subject: a for a in (MailAnalysed.model_validate_json(m.body) for m in messages)}
    confirmation = by_subject["(#812345678) Gmail Forwarding Confirmation - Receive Mail from owner.acme@gmail.com"]
    assert confirmation.provider_confirmation is not None and confirmation.provider_confirmation.code == "812345678"
    broken = by_subject["broken"]
    assert any("damaged base64" in w for w in broken.parse_warnings)
    assert broken.raw == eml("broken_mime.eml")
    assert by_subject["見積もりの依頼"].parse_warnings


async def test_bounce_to_verp_address_reports_the_delivery(full, mongo_db):
    message_id = "0123456789abcdef0123456789abcdef"
    bounce = verp.encode_bounce_address(message_id, VERP_SECRET.encode(), INBOUND_DOMAIN)
    forged = f"bounce+{message_id}.aaaaaaaaaaaaaaaa@{INBOUND_DOMAIN}"
    result = await send(full.smtp_port, "", [forged, bounce], eml("dsn_bounce_postfix.eml", BOUNCE_ADDRESS=bounce))
    assert [code for code, _ in result.rcpt] == [550, 250]
    assert result.data is not None and result.data[0] == 250
    [message] = await take_messages(full.amqp_url, topology.INBOX_DELIVERY.name, 1, correlation_ids={result.mail_id})
    report = DeliveryReported.model_validate_json(message.body)
    assert (report.message_id, report.status, report.recipient, report.smtp_code, report.permanent) == (
        message_id, "bounced", "nobody@customer.example", 550, True,
    )  # fmt: skip


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


async def test_ops_endpoints_and_metrics(smtp_only, mongo_db):
    stream = await add_stream(mongo_db)
    result = await send(
        smtp_only.smtp_port, "a@b.example", [stream["forwarding_address"], f"x@{INBOUND_DOMAIN}"], SIMPLE
    )
    async with httpx.AsyncClient(base_url=smtp_only.ops_url) as client:
        assert (await client.get("/healthz")).status_code == 200
        ready = (await client.get("/readyz")).json()
        assert ready["checks"] == {"broker": True, "smtp_listener": True}
        metrics = (await client.get("/metrics")).text
    assert 'mailstream_ingest_refused_total{reason="unknown_recipient"}' in metrics
    assert "mailstream_ingest_mails_accepted_total" in metrics
    assert "mailstream_ingest_durable_confirm_seconds_bucket" in metrics
    await take_messages(smtp_only.amqp_url, topology.INGEST_ANALYSE.name, 1, correlation_ids={result.mail_id})


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


async def test_large_mail_with_attachment_is_accepted_and_analysed(full, mongo_db):
    stream = await add_stream(mongo_db)
    payload = bytes(range(256)) * (4 * 1024 * 1024 // 256)  # 4 MiB of binary
    encoded = base64.encodebytes(payload).replace(b"\n", b"\r\n")
    raw = (
        b"From: Big <big@customer.example>\r\nTo: support@acme.example\r\nSubject: big\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n'
        b'--b\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename="dump.bin"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\n" + encoded + b"--b--\r\n"
    )
    result = await send(full.smtp_port, "big@customer.example", [stream["forwarding_address"]], raw)
    [message] = await take_messages(
        full.amqp_url, topology.INBOX_STORE.name, 1, correlation_ids={result.mail_id}, timeout=60
    )
    analysed = MailAnalysed.model_validate_json(message.body)
    assert analysed.raw == raw
    [attachment] = analysed.attachments
    assert (attachment.filename, attachment.size) == ("dump.bin", len(payload))
    assert attachment.sha256 == hashlib.sha256(payload).hexdigest()


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
