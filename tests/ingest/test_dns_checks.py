"""SPF, DKIM and DMARC against a real DNS server (dnsmasq on a free port), and the time box on a dead one."""

import asyncio
import base64
import shutil
import socket
import subprocess
import time

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from mailstream_ingest.dns_checks import Authenticator, ResolverBreaker, make_resolver
from tests.support.processes import free_port

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def signing_key():
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )
    public_der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private_pem, base64.b64encode(public_der).decode()


@pytest.fixture(scope="module")
def dns_server(signing_key):
    if shutil.which("dnsmasq") is None:
        pytest.fail("dnsmasq is missing (scripts/deps.sh installs dnsmasq-base)")
    port = free_port()
    records = {
        "sel1._domainkey.acme.example": f"v=DKIM1; k=rsa; p={signing_key[1]}",
        "acme.example": "v=spf1 ip4:127.0.0.1 -all",
        "_dmarc.acme.example": "v=DMARC1; p=reject; adkim=r; aspf=r",
        "elsewhere.example": "v=spf1 ip4:192.0.2.1 -all",
    }
    args = ["dnsmasq", "--no-daemon", "--no-resolv", "--no-hosts", "--listen-address=127.0.0.1", f"--port={port}"]
    args += ["--bind-interfaces", "--log-facility=-", "--local=/example/"] + [
        f"--txt-record={n},{v}" for n, v in records.items()
    ]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    resolver = make_resolver(f"127.0.0.1:{port}", 1)
    while True:
        try:
            resolver.resolve("acme.example", "TXT")
            break
        except Exception:
            if time.monotonic() > deadline:
                proc.kill()
                raise
            time.sleep(0.1)
    yield f"127.0.0.1:{port}"
    proc.terminate()
    proc.wait(5)


def _signed(private_pem: bytes, from_address: str = "jane@acme.example") -> bytes:
    body = f"From: Jane <{from_address}>\r\nTo: fwd@in.mailstream.test\r\nSubject: signed\r\nDate: Tue, 5 Mar 2024 09:00:00 +0000\r\nMessage-ID: <s1@acme.example>\r\n\r\nHello\r\n".encode()
    signature = dkim.sign(
        body, b"sel1", b"acme.example", private_pem, include_headers=[b"from", b"to", b"subject", b"date"]
    )
    return signature + body


async def test_spf_dkim_dmarc_pass(dns_server, signing_key):
    auth = Authenticator(make_resolver(dns_server, 1), authserv_id="in.mailstream.test", dns_timeout=1, time_box=5)
    result = await auth.authenticate(
        _signed(signing_key[0]), client_ip="127.0.0.1", mail_from="jane@acme.example", helo="mx.acme.example",
        from_domain="acme.example",
    )  # fmt: skip
    assert (result.spf, result.dkim, result.dmarc) == ("pass", "pass", "pass")
    assert result.header.startswith(
        "in.mailstream.test; spf=pass smtp.mailfrom=jane@acme.example; dkim=pass header.d=acme.example"
    )
    assert "dmarc=pass (p=reject) header.from=acme.example" in result.header
    auth.close()


async def test_tampered_mail_and_foreign_ip_fail_dmarc(dns_server, signing_key):
    auth = Authenticator(make_resolver(dns_server, 1), authserv_id="in.mailstream.test", dns_timeout=1, time_box=5)
    tampered = _signed(signing_key[0]).replace(b"Hello", b"Give me your password")
    result = await auth.authenticate(
        tampered, client_ip="198.51.100.7", mail_from="jane@acme.example", helo="x", from_domain="acme.example"
    )
    assert (result.spf, result.dkim, result.dmarc) == ("fail", "fail", "fail")
    auth.close()


async def test_unsigned_mail_from_domain_without_records(dns_server):
    auth = Authenticator(make_resolver(dns_server, 1), authserv_id="in", dns_timeout=1, time_box=5)
    raw = b"From: a@nowhere.example\r\nSubject: x\r\n\r\nbody\r\n"
    result = await auth.authenticate(
        raw, client_ip="127.0.0.1", mail_from="a@nowhere.example", helo="x", from_domain="nowhere.example"
    )
    assert (result.spf, result.dkim, result.dmarc) == ("none", "none", "none")
    auth.close()


async def test_dead_resolver_is_temperror_within_the_time_box(signing_key):
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # receives queries, never answers
    silent.bind(("127.0.0.1", 0))
    try:
        port = silent.getsockname()[1]
        auth = Authenticator(make_resolver(f"127.0.0.1:{port}", 0.3), authserv_id="in", dns_timeout=0.3, time_box=1.5)
        started = time.monotonic()
        results = await asyncio.gather(
            *(
                auth.authenticate(
                    _signed(signing_key[0]),
                    client_ip="127.0.0.1",
                    mail_from="j@acme.example",
                    helo="x",
                    from_domain="acme.example",
                )
                for _ in range(3)
            )
        )
        assert time.monotonic() - started < 3
        for result in results:
            assert result.spf == "temperror" and result.dkim == "temperror" and result.dmarc == "temperror"
        auth.close()
    finally:
        silent.close()


def test_breaker_opens_after_repeated_timeouts_and_retries_after_the_cool_down():
    now = [0.0]
    breaker = ResolverBreaker(threshold=3, cool_down=30, clock=lambda: now[0])
    for _ in range(2):
        breaker.timed_out()
    assert breaker.allow()
    breaker.timed_out()
    assert not breaker.allow()
    now[0] = 31
    assert breaker.allow()  # one trial lookup
    breaker.timed_out()
    assert not breaker.allow()
    now[0] = 62
    breaker.succeeded()
    assert breaker.allow()


async def test_dead_resolver_costs_only_the_first_mails_their_timeouts(signing_key):
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    try:
        resolver = make_resolver(f"127.0.0.1:{silent.getsockname()[1]}", 0.3)
        auth = Authenticator(resolver, authserv_id="in", dns_timeout=0.3, time_box=5)
        raw = _signed(signing_key[0])
        kwargs = {"client_ip": "127.0.0.1", "mail_from": "j@acme.example", "helo": "x", "from_domain": "acme.example"}
        await auth.authenticate(raw, **kwargs)  # pays the timeouts and opens the breaker
        started = time.monotonic()
        result = await auth.authenticate(raw, **kwargs)
        assert time.monotonic() - started < 0.2
        assert (result.spf, result.dkim, result.dmarc) == ("temperror", "temperror", "temperror")
        auth.close()
    finally:
        silent.close()
