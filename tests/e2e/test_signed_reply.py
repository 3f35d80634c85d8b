"""A brand sends as its own domain, end to end: the admin adds acme.test through the gateway, publishes the records
the API showed in a real DNS server (dnsmasq) that every service resolves through, verifies them, and an agent's
reply to a customer then leaves the relay DKIM-signed for acme.test. Independent verifiers judge the result:
Perl Mail::DKIM and dkimpy for the signature, Perl Mail::SPF for the published SPF record and the sending IP, and a
DMARC check (the From domain's policy record and DKIM alignment) computed here from the same DNS."""

from collections.abc import Iterator
from email.message import EmailMessage
from email.utils import make_msgid

import dkim
import dns.message
import dns.query
import dns.rdatatype
import httpx
import pytest
from cryptography.hazmat.primitives import serialization

from tests.e2e.conftest import System, running_system
from tests.e2e.scenarios_support import (
    messages_of,
    new_account,
    new_stream,
    parse,
    relay_dumps,
    reply,
    sink_envelope,
    smtp_send,
    strip_sink_headers,
    wait_for_conversation,
)
from tests.support.backends import Backends
from tests.support.dns_server import DnsServer
from tests.support.mail_auth import dkim_verify, spf_result
from tests.support.service_tokens import SENDER_TOKEN

pytestmark = pytest.mark.e2e

DOMAIN = "acme.test"
SPF_INCLUDE = "_spf.mailstream.test"  # the domains service's default DOMAINS_SPF_INCLUDE
SENDING_IP = "127.0.0.1"  # where sender connects to the relay from
# Mailstream's own zone, published by its operator: the include every customer SPF record names.
MAILSTREAM_ZONE = {SPF_INCLUDE: [f"v=spf1 ip4:{SENDING_IP} -all"]}


@pytest.fixture(scope="module")
def dns_server() -> Iterator[DnsServer]:
    server = DnsServer.start(MAILSTREAM_ZONE)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def system(backends: Backends, tmp_path_factory: pytest.TempPathFactory, dns_server: DnsServer) -> Iterator[System]:
    with running_system(
        backends,
        tmp_path_factory,
        "signed",
        {"DNS_NAMESERVERS": dns_server.nameserver, "DNS_TIMEOUT_SECONDS": "3", "INGEST_DNS_TIMEOUT_SECONDS": "1"},
    ) as running:
        yield running


class RecordingClient:
    """Every response body the gateway gave, so that the test can look for leaked secrets in all of them."""

    def __init__(self, api: httpx.Client) -> None:
        self.bodies: list[str] = []
        api.event_hooks["response"].append(self._record)

    def _record(self, response: httpx.Response) -> None:
        response.read()
        self.bodies.append(response.text)


def txt(dns_server: DnsServer, name: str) -> list[str]:
    """The TXT values at `name`, straight from the test's DNS server."""
    query = dns.message.make_query(name, "TXT")
    answer = dns.query.udp(query, dns_server.host, port=dns_server.port, timeout=3)
    return [
        b"".join(record.strings).decode()
        for rrset in answer.answer
        if rrset.rdtype == dns.rdatatype.TXT
        for record in rrset
    ]


def dkimpy_dns(dns_server: DnsServer):
    """dkimpy's `dnsfunc`, resolving through the test's DNS server."""

    def lookup(name: bytes | str, timeout: int = 5) -> bytes | None:
        values = txt(dns_server, name.decode() if isinstance(name, bytes) else name)
        return values[0].encode() if values else None

    return lookup


def published_zone(domain_view: dict) -> dict[str, list[str]]:
    """What a diligent IT team publishes from the records the API showed, next to Mailstream's own zone."""
    zone: dict[str, list[str]] = {name: list(values) for name, values in MAILSTREAM_ZONE.items()}
    for record in domain_view["dns_records"]:
        assert record["type"] == "TXT", record  # this set-up publishes TXT records only
        zone.setdefault(record["host"].rstrip("."), []).append(record["value"])
    return zone


def dkim_tags(raw: bytes) -> dict[str, str]:
    """The tags of the mail's (single) DKIM-Signature header."""
    signatures = parse(raw).get_all("DKIM-Signature") or []
    assert len(signatures) == 1, signatures
    unfolded = "".join(str(signatures[0]).split())
    return {name: value for name, _, value in (part.partition("=") for part in unfolded.split(";")) if name}


def test_a_reply_from_a_verified_domain_is_signed_and_passes_spf_and_dmarc(system: System, dns_server: DnsServer):
    account, api = new_account(system, "Acme signed")
    recorded = RecordingClient(api)

    created = api.post("/v1/domains", json={"name": DOMAIN, "dkim_key_bits": 2048})
    assert created.status_code == 201, created.text
    domain = created.json()
    assert domain["name"] == DOMAIN
    assert domain["status"] != "verified"  # nothing is published yet
    purposes = {record["purpose"] for record in domain["dns_records"]}
    assert {"dkim", "spf", "dmarc"} <= purposes, domain["dns_records"]

    dns_server.set_records(published_zone(domain))
    verified = api.post(f"/v1/domains/{domain['id']}/verify")
    assert verified.status_code == 200, verified.text
    verified = verified.json()
    assert verified["status"] == "verified", verified
    statuses = {record["purpose"]: record["status"] for record in verified["dns_records"]}
    assert statuses["dkim"] == statuses["spf"] == "verified", verified["dns_records"]
    assert api.get(f"/v1/domains/{domain['id']}").json()["status"] == "verified"

    stream = new_stream(api, f"support@{DOMAIN}", display_name="Acme Support")
    mail = EmailMessage()
    mail["From"] = "Kana Customer <kana@example.net>"
    mail["To"] = f"support@{DOMAIN}"
    mail["Subject"] = "Signed reply please"
    mail["Message-ID"] = make_msgid(domain="example.net")
    mail.set_content("Hello, where is order 77?")
    smtp_send(system, mail, mail_from="kana@example.net", rcpt=stream["forwarding_address"])
    conversation = wait_for_conversation(api, stream["id"], "Signed reply please")

    sent = reply(api, conversation["id"], "Order 77 ships today.")
    assert [m["direction"] for m in messages_of(api, conversation["id"])] == ["inbound", "outbound"]

    dumps = [d for d in relay_dumps(system) if "kana@example.net" in sink_envelope(d, b"X-Rcpt-Args")]
    assert len(dumps) == 1, f"{len(dumps)} replies at the relay: {relay_dumps(system)!r}"
    raw = strip_sink_headers(dumps[0])
    assert b"Order 77 ships today." in raw
    assert sent["message_id_header"].encode() in raw

    # DKIM: Mail::DKIM (Perl) and dkimpy agree that the relay's bytes carry a valid d=acme.test signature.
    tags = dkim_tags(raw)
    assert tags["d"] == DOMAIN
    selector = next(r["selector"] for r in verified["dns_records"] if r["purpose"] == "dkim")
    assert tags["s"] == selector
    assert "from" in tags["h"].lower().split(":")
    verdict = dkim_verify(dns_server, raw)
    assert f"{DOMAIN} {selector} pass" in verdict and verdict.strip().endswith("RESULT pass"), verdict
    assert dkim.verify(raw, dnsfunc=dkimpy_dns(dns_server)) is True
    tampered = raw.replace(b"Order 77 ships today.", b"Order 78 ships today.")
    assert dkim.verify(tampered, dnsfunc=dkimpy_dns(dns_server)) is False  # the verifiers do look at the body

    # SPF: the From domain's published record authorises the IP the mail left from (Mail::SPF).
    client_ip = sink_envelope(dumps[0], b"X-Client-Addr")
    assert client_ip == SENDING_IP
    assert spf_result(dns_server, f"support@{DOMAIN}", client_ip) == "pass"
    assert spf_result(dns_server, f"support@{DOMAIN}", "192.0.2.99") in ("softfail", "fail")

    # DMARC: a policy record at _dmarc.acme.test, and DKIM aligned with the From domain under its adkim mode.
    dmarc_records = [v for v in txt(dns_server, f"_dmarc.{DOMAIN}") if v.lower().startswith("v=dmarc1")]
    assert len(dmarc_records) == 1, dmarc_records
    policy_tags = {k.strip().lower(): v.strip() for k, _, v in (p.partition("=") for p in dmarc_records[0].split(";"))}
    assert policy_tags["p"] in ("none", "quarantine", "reject")
    from_addresses = parse(raw)["From"].addresses
    assert len(from_addresses) == 1
    header_domain = from_addresses[0].domain.lower()
    assert header_domain == DOMAIN
    if policy_tags.get("adkim", "r") == "s":
        assert tags["d"].lower() == header_domain
    else:
        assert tags["d"].lower() == header_domain or header_domain.endswith("." + tags["d"].lower())

    # A receiver running Mailstream judges it the same way: the customer's own mailbox (another account's stream)
    # gets the reply from the relay with its envelope sender, and ingest's SPF/DKIM/DMARC checks run on our DNS.
    _, receiver = new_account(system, "Kana's mailbox")
    inbox_stream = new_stream(receiver, "kana@example.net")
    verp_sender = sink_envelope(dumps[0], b"X-Mail-Args").partition("<")[2].partition(">")[0]
    assert verp_sender.endswith("@in.mailstream.test")  # bounces come back to Mailstream (no return-path record)
    smtp_send(system, raw, mail_from=verp_sender, rcpt=inbox_stream["forwarding_address"])
    received = wait_for_conversation(receiver, inbox_stream["id"], "Signed reply please")
    [judged] = messages_of(receiver, received["id"])
    assert judged["authentication"]["dkim"] == "pass", judged["authentication"]
    assert judged["authentication"]["dmarc"] == "pass", judged["authentication"]

    # The private key never left the domains service through the gateway. The PEM also holds the public modulus
    # (published in DNS and rightly shown), so only its secret parts are looked for: the PEM lines that are not in
    # the public key, and the private exponent and primes as numbers.
    key = httpx.get(
        f"{system.env['DOMAINS_URL']}/internal/signing-key",
        params={"domain": DOMAIN, "account_id": account["account_id"]},
        headers={"X-Internal-Token": SENDER_TOKEN},  # the sender's credential: the only one that opens it
        timeout=10,
    )
    assert key.status_code == 200, key.text
    pem = key.json()["private_key_pem"]
    public_b64 = "".join(record["value"] for record in verified["dns_records"] if record["purpose"] == "dkim").replace(
        " ", ""
    )
    secret_lines = [line for line in pem.splitlines() if "PRIVATE KEY" not in line and line not in public_b64]
    assert len(secret_lines) >= 15, "a 2048-bit key has more secret PEM lines than that"
    numbers = serialization.load_pem_private_key(pem.encode(), None).private_numbers()  # type: ignore[union-attr]
    secrets = [*secret_lines, *(str(n) for n in (numbers.d, numbers.p, numbers.q)), f"{numbers.d:x}"]
    api.get("/v1/domains")
    api.get("/openapi.json")
    assert len(recorded.bodies) >= 8
    for body in recorded.bodies:
        assert "PRIVATE KEY" not in body
        assert not [secret for secret in secrets if secret in body]
