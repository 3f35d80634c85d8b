"""The smarthost adapter: reading relay replies (queue ids, stated retry delays, temporary vs permanent outcomes;
pure), and, against a real TLS SMTP server, STARTTLS and implicit TLS with authentication, the connection pool and
the per-destination limit."""

import asyncio
import datetime as dt
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from mailstream_sender.smtp_relay import RelayConfig, SendResult, SmtpRelay, parse_queue_id, parse_retry_after
from tests.support.smtp_sink import RecordingSink


@pytest.mark.parametrize(
    ("reply", "queue_id"),
    [
        ("2.0.0 Ok: queued as 4Xk2Lm0qZbz9", "4Xk2Lm0qZbz9"),  # Postfix
        ("OK id=1rABcD-0007xy-3Q", "1rABcD-0007xy-3Q"),  # Exim
        (
            "2.0.0 OK  1700000000 d9443c01a7336-1e4c5f0a3b5sm123456plb.90 - gsmtp",
            "d9443c01a7336-1e4c5f0a3b5sm123456plb.90",
        ),
        ("2.0.0 Ok", None),  # smtp-sink names none
        (
            "2.6.0 <abc@acme.test> [InternalId=12884901889537, Hostname=AM0PR01MB1234.eurprd01.prod.outlook.com] "
            "10240 bytes in 0.120, 83.125 KB/sec Queued mail for delivery",
            "12884901889537",
        ),
        (
            "Ok 0100018c2f0e1b2a-5f1c8a0e-3b7d-4c7e-9a1b-2c3d4e5f6a7b-000000",
            "0100018c2f0e1b2a-5f1c8a0e-3b7d-4c7e-9a1b-2c3d4e5f6a7b-000000",
        ),  # Amazon SES
        ("2.0.0 Ok great success", None),  # words are no id
    ],
)
def test_queue_id_from_the_250_reply(reply, queue_id):
    assert parse_queue_id(reply) == queue_id


@pytest.mark.parametrize(
    ("reply", "seconds"),
    [
        ("4.7.0 Try again in 120 seconds", 120),
        ("4.3.2 Service busy, retry after 5 minutes", 300),
        ("4.7.1 Greylisted, please try again later", None),
        ("4.4.5 Insufficient system storage", None),
        ("Retry in 30s", 30),
    ],
)
def test_retry_delay_a_server_asks_for(reply, seconds):
    assert parse_retry_after(reply) == seconds


@pytest.mark.parametrize(
    ("code", "outcome"),
    [
        (250, "sent"),
        (251, "sent"),
        (421, "temporary"),
        (451, "temporary"),
        (452, "temporary"),
        (550, "permanent"),
        (552, "permanent"),
        (554, "permanent"),
    ],
)
def test_reply_codes_decide_between_temporary_and_permanent(code, outcome):
    assert SendResult.from_reply(code, "text").outcome == outcome


def test_result_detail_names_code_reply_and_refused_recipients():
    result = SendResult.from_reply(250, "2.0.0 Ok: queued as ABC", ("cc@example.net",))
    assert result.sent and result.relay_queue_id == "ABC"
    assert result.detail == "250 2.0.0 Ok: queued as ABC (refused: cc@example.net)"
    assert SendResult.unreachable("relay down").detail == "relay down"
    assert SendResult.from_reply(451, "4.7.0 try again in 10 seconds").retry_after == 10


MAIL = b"From: a@acme.test\r\nTo: b@example.net\r\nSubject: tls\r\n\r\nhello\r\n"


@pytest.fixture(scope="module")
def server_tls(tmp_path_factory) -> ssl.SSLContext:
    """A self-signed certificate for 127.0.0.1, as a server-side context."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "relay.test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("relay.test")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    directory: Path = tmp_path_factory.mktemp("tls")
    (directory / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(directory / "cert.pem", directory / "key.pem")
    return context


def _authenticator(server, session, envelope, mechanism, auth_data) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (b"mailer", b"s3cret")
    return AuthResult(success=ok, handled=False, auth_data=auth_data)


@pytest.fixture
def starttls_relay(server_tls) -> Iterator[RecordingSink]:
    sink = RecordingSink(
        tls_context=server_tls, require_starttls=True, authenticator=_authenticator, auth_required=True
    ).start()
    yield sink
    sink.stop()


@pytest.mark.integration
async def test_starttls_with_login(starttls_relay):
    relay = SmtpRelay(
        RelayConfig(
            "127.0.0.1",
            starttls_relay.port,
            tls="starttls",
            verify_certificates=False,
            username="mailer",
            password="s3cret",
            helo_name="sender.test",
        )
    )
    try:
        first = await relay.send("bounce@b.test", ["b@example.net"], MAIL)
        second = await relay.send("bounce@b.test", ["b@example.net"], MAIL)  # over the pooled connection
    finally:
        await relay.close()
    assert first.sent and second.sent, (first, second)
    received = starttls_relay.messages()
    assert [(m.tls, m.login) for m in received] == [(True, "mailer"), (True, "mailer")]


@pytest.mark.integration
async def test_wrong_password_is_a_failure_not_a_crash(starttls_relay):
    relay = SmtpRelay(
        RelayConfig(
            "127.0.0.1",
            starttls_relay.port,
            tls="starttls",
            verify_certificates=False,
            username="mailer",
            password="wrong",
            helo_name="sender.test",
        )
    )
    try:
        result = await relay.send("bounce@b.test", ["b@example.net"], MAIL)
    finally:
        await relay.close()
    assert not result.sent and result.outcome == "temporary"  # an operator fixes the credentials; mail waits
    assert starttls_relay.messages() == []


@pytest.mark.integration
async def test_implicit_tls(server_tls):
    sink = RecordingSink(ssl_context=server_tls).start()
    relay = SmtpRelay(
        RelayConfig("127.0.0.1", sink.port, tls="implicit", verify_certificates=False, helo_name="sender.test")
    )
    try:
        result = await relay.send("bounce@b.test", ["b@example.net"], MAIL)
    finally:
        await relay.close()
        sink.stop()
    assert result.sent, result
    assert sink.messages()[0].tls


@pytest.mark.integration
async def test_connections_are_pooled_and_limited_per_destination():
    sink = RecordingSink().start()
    sink.data_delay = 0.1
    relay = SmtpRelay(RelayConfig("127.0.0.1", sink.port, pool_size=4, per_destination_concurrency=1))
    try:
        results = await asyncio.gather(*(relay.send("bounce@b.test", [f"user{i}@example.net"], MAIL) for i in range(4)))
        assert all(r.sent for r in results)
        assert sink.max_open_transactions == 1  # one destination, limit 1: one transaction at a time
        assert len(relay._idle) == 1  # and that one connection served all four mails
    finally:
        await relay.close()
        sink.stop()
