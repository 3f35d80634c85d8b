"""`ingest.analyse` through the running service: what arrives by SMTP is published analysed."""

import base64
import hashlib

import pytest

from mailstream_common import topology, verp
from mailstream_common.contracts import DeliveryReported, MailAnalysed
from tests.ingest.conftest import INBOUND_DOMAIN, VERP_SECRET, add_stream, run_ingest, take_messages
from tests.ingest.fixtures import eml
from tests.ingest.smtp_client import send

pytestmark = pytest.mark.integration

SIMPLE = b"From: Jane <jane@customer.example>\r\nTo: support@acme.example\r\nSubject: hi\r\n\r\nHello\r\n"


@pytest.fixture
async def full(vhost, mongo_db, backends):
    async with run_ingest(vhost[1], mongo_db, backends.mongodb_uri, INGEST_ROLE="all") as running:
        yield running


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
