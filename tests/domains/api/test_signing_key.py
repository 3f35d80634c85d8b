"""`/internal/signing-key`: only the sender's credential opens it, only a verified key is handed out, every read is
counted and logged without the key."""

import base64
import logging

import pytest
from cryptography.hazmat.primitives import serialization

from mailstream_domains import metrics
from tests.domains.conftest import DomainsHarness, create, events_seen, headers, published, record, sender_headers
from tests.support.dns_server import DnsServer
from tests.support.waiting import wait_for


async def test_verify_then_signing_key_for_sender(
    harness: DomainsHarness, dns: DnsServer, domain_events: list, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mailstream_domains.api")
    reads = metrics.SIGNING_KEY_READS.labels("sender", "found")
    reads_before = reads._value.get()
    view = await create(harness)
    key_url = "/internal/signing-key?domain=acme.test&account_id=acct-a"
    assert (await harness.client.get(key_url, headers=sender_headers())).status_code == 404  # not verified yet
    dns.set_records(published(view))
    verified = (await harness.client.post(f"/v1/domains/{view['id']}/verify", headers=headers())).json()
    assert verified["status"] == "verified", verified
    assert all(r["status"] == "verified" and r["checked_at"] for r in verified["dns_records"])
    selector = record(view, "dkim")["selector"]
    assert verified["signing_selector"] == selector
    response = await harness.client.get(key_url, headers=sender_headers())
    assert response.status_code == 200
    key = response.json()
    assert key["selector"] == selector and key["algorithm"] == "rsa-sha256" and key["domain"] == "acme.test"
    assert key["private_key_pem"].startswith("-----BEGIN RSA PRIVATE KEY-----") and key["ed25519"] is None
    # Every read is counted and logged with who read which domain's key, never the key itself.
    assert reads._value.get() == reads_before + 1
    [logged] = [r for r in caplog.records if r.getMessage() == "signing key read" and r.outcome == "found"]
    assert (logged.caller, logged.domain, logged.account_id) == ("sender", "acme.test", "acct-a")
    assert not [r for r in caplog.records if "PRIVATE KEY" in r.getMessage() + str(r.__dict__)]
    assert (await harness.client.get(key_url, headers={"X-Internal-Token": "nope"})).status_code == 401
    # The gateway's credential is valid but does not open the key route: only the sender's does.
    refused = await harness.client.get(key_url, headers=headers())
    assert refused.status_code == 403 and "PRIVATE KEY" not in refused.text
    assert (await harness.client.get(key_url.replace("acct-a", "acct-b"), headers=sender_headers())).status_code == 404
    events = await wait_for(lambda: events_seen(domain_events, 2), what="created + status_changed events")
    assert [(e.change, e.status, e.signing_selector) for e in events] == [
        ("created", "pending", None),
        ("status_changed", "verified", selector),
    ]


async def test_a_removed_record_stops_signing(
    harness: DomainsHarness, dns: DnsServer, domain_events: list, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="mailstream_domains.manager")
    lost = metrics.RECORDS_LOST.labels("dkim")
    view = await create(harness)
    dns.set_records(published(view))
    await harness.client.post(f"/v1/domains/{view['id']}/verify", headers=headers())
    lost_before = lost._value.get()  # a first verification loses nothing
    dns.set_records(published(view, "spf", "dmarc"))  # someone deleted the DKIM record
    after = (await harness.client.post(f"/v1/domains/{view['id']}/verify", headers=headers())).json()
    assert lost._value.get() == lost_before + 1  # what the DkimRecordGone alert fires on
    [logged] = [r for r in caplog.records if r.getMessage() == "verified record lost"]
    assert (logged.domain, logged.record.split(":")[0], logged.problem) == ("acme.test", "dkim", "missing")
    assert after["status"] == "pending" and after["signing_selector"] is None
    assert record(after, "dkim")["problem"] == "missing"
    key = await harness.client.get("/internal/signing-key?domain=acme.test&account_id=acct-a", headers=sender_headers())
    assert key.status_code == 404
    events = await wait_for(lambda: events_seen(domain_events, 3), what="three events")
    assert (events[2].change, events[2].signing_selector) == ("status_changed", None)


async def test_optional_ed25519_second_key(harness: DomainsHarness, dns: DnsServer) -> None:
    harness.manager.ed25519 = True
    view = await create(harness, dkim_key_bits=1024)
    ed = next(r for r in view["dns_records"] if r["algorithm"] == "ed25519")
    assert ed["value"].startswith("v=DKIM1; k=ed25519; p=") and ed["selector"].endswith("e")
    key_url = "/internal/signing-key?domain=acme.test&account_id=acct-a"
    dns.set_records(published(view, "spf"))
    dns.update({r["host"]: [r["value"]] for r in view["dns_records"] if r["algorithm"] == "rsa"})
    await harness.client.post(f"/v1/domains/{view['id']}/verify", headers=headers())
    # The Ed25519 record is missing, so only the RSA key signs.
    assert (await harness.client.get(key_url, headers=sender_headers())).json()["ed25519"] is None
    dns.set_records(published(view))
    await harness.client.post(f"/v1/domains/{view['id']}/verify", headers=headers())
    second = (await harness.client.get(key_url, headers=sender_headers())).json()["ed25519"]
    assert second["selector"] == ed["selector"]
    private = serialization.load_pem_private_key(second["private_key_pem"].encode(), None)
    raw_public = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert ed["value"].endswith("p=" + base64.b64encode(raw_public).decode())
    raw_private = private.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    assert second["private_key_b64"] == base64.b64encode(raw_private).decode()
