"""Independent implementations agree: mail signed with this service's key verifies with Perl Mail::DKIM, and the
SPF record it tells customers to publish passes Perl Mail::SPF for Mailstream's sending IP; key rotation keeps
every mail verifiable throughout. All lookups go to the dnsmasq serving the records the API showed."""

from email.message import EmailMessage
from email.utils import make_msgid

import dkim

from tests.domains.conftest import SENDING_IP, DomainsHarness, headers, published, sender_headers
from tests.support.dns_server import DnsServer
from tests.support.mail_auth import dkim_result, dkim_verify, spf_result


def mail(subject: str) -> bytes:
    message = EmailMessage()
    message["From"] = "Acme Support <support@acme.test>"
    message["To"] = "customer@example.test"
    message["Subject"] = subject
    message["Message-ID"] = make_msgid(domain="acme.test")
    message.set_content(f"Hello,\n\nthis is {subject}.\n")
    return message.as_bytes(policy=message.policy.clone(linesep="\r\n"))


async def signing_key(harness: DomainsHarness) -> dict:
    response = await harness.client.get(
        "/internal/signing-key?domain=acme.test&account_id=acct-a", headers=sender_headers()
    )
    assert response.status_code == 200, response.text
    return response.json()


def sign(message: bytes, key: dict) -> bytes:
    """What sender does with the key it gets from /internal/signing-key."""
    header = dkim.sign(
        message,
        key["selector"].encode(),
        key["domain"].encode(),
        key["private_key_pem"].encode(),
        include_headers=[b"from", b"to", b"subject", b"message-id"],
    )
    return header + message


async def create_and_publish(harness: DomainsHarness, dns: DnsServer, bits: int) -> dict:
    response = await harness.client.post(
        "/v1/domains", json={"name": "acme.test", "dkim_key_bits": bits}, headers=headers()
    )
    view = response.json()
    dns.set_records(published(view))
    verified = (await harness.client.post(f"/v1/domains/{view['id']}/verify", headers=headers())).json()
    assert verified["status"] == "verified", verified
    return verified


async def test_signed_mail_verifies_with_mail_dkim(harness: DomainsHarness, dns: DnsServer) -> None:
    await create_and_publish(harness, dns, 2048)
    key = await signing_key(harness)
    out = dkim_verify(dns, sign(mail("a 2048-bit signature"), key))
    assert f"acme.test {key['selector']} pass" in out and out.strip().endswith("RESULT pass"), out
    tampered = sign(mail("a 2048-bit signature"), key).replace(b"this is", b"this was")
    assert dkim_result(dns, tampered) == "fail"


async def test_1024_bit_keys_verify_too(harness: DomainsHarness, dns: DnsServer) -> None:
    await create_and_publish(harness, dns, 1024)
    assert dkim_result(dns, sign(mail("a 1024-bit signature"), await signing_key(harness))) == "pass"


async def test_published_spf_passes_mail_spf_for_the_sending_ip(harness: DomainsHarness, dns: DnsServer) -> None:
    await create_and_publish(harness, dns, 1024)
    assert spf_result(dns, "support@acme.test", SENDING_IP) == "pass"
    assert spf_result(dns, "support@acme.test", "192.0.2.99") == "softfail"  # our ~all for everyone else


async def test_merged_spf_keeps_the_existing_senders(harness: DomainsHarness, dns: DnsServer) -> None:
    dns.update({"acme.test": ["v=spf1 ip4:192.0.2.50 -all"]})  # the customer's existing record
    view = (
        await harness.client.post("/v1/domains", json={"name": "acme.test", "dkim_key_bits": 1024}, headers=headers())
    ).json()
    seen = (await harness.client.post(f"/v1/domains/{view['id']}/verify", headers=headers())).json()
    spf = next(r for r in seen["dns_records"] if r["purpose"] == "spf")
    assert spf["problem"] == "missing_include"
    assert spf["value"] == "v=spf1 ip4:192.0.2.50 include:_spf.mailstream.test -all"
    dns.set_records(published(seen))  # the IT team replaces their record with the merged one
    assert spf_result(dns, "support@acme.test", SENDING_IP) == "pass"
    assert spf_result(dns, "support@acme.test", "192.0.2.50") == "pass"
    assert spf_result(dns, "support@acme.test", "192.0.2.99") == "fail"  # their -all is kept


async def test_rotation_keeps_every_mail_verifiable(harness: DomainsHarness, dns: DnsServer) -> None:
    """Mail signed before, during and after a rotation all verifies while the records shown are published."""
    view = await create_and_publish(harness, dns, 1024)
    signed = [sign(mail("before the rotation"), await signing_key(harness))]

    rotating = (await harness.client.post(f"/v1/domains/{view['id']}/dkim/rotate", headers=headers())).json()
    signed.append(sign(mail("rotation requested, new record not yet published"), await signing_key(harness)))
    for message in signed:
        assert dkim_result(dns, message) == "pass"

    dns.set_records(published(rotating))  # the IT team publishes the new record next to the old one
    signed.append(sign(mail("published, not yet verified"), await signing_key(harness)))
    switched = (await harness.client.post(f"/v1/domains/{view['id']}/verify", headers=headers())).json()
    new_key = await signing_key(harness)
    assert new_key["selector"] == switched["signing_selector"] != view["signing_selector"]
    signed.append(sign(mail("after the switch"), new_key))

    dns.set_records(published(switched))  # the records shown now: new active + old retiring
    selectors = set()
    for message in signed:
        out = dkim_verify(dns, message)
        assert out.strip().endswith("RESULT pass"), out
        selectors.add(out.split()[1])
    assert selectors == {view["signing_selector"], new_key["selector"]}
