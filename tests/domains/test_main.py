"""The real process: `python -m mailstream_domains` with its env, ops routes, background verifier, events, shutdown."""

import json
from collections.abc import Iterator

import httpx
import pytest
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import serialization

from tests.domains.conftest import BOUNCE_DOMAIN, MAILSTREAM_ZONE, SPF_INCLUDE, published
from tests.support import backends as backends_module
from tests.support.dns_server import DnsServer
from tests.support.processes import ServiceProcess, free_port
from tests.support.service_tokens import GATEWAY_TOKEN, SENDER_TOKEN, service_env
from tests.support.waiting import wait_for

TOKEN = GATEWAY_TOKEN
pytestmark = pytest.mark.integration


@pytest.fixture
def domains_process(backends: backends_module.Backends, dns: DnsServer, tmp_path) -> Iterator[ServiceProcess]:
    dns.set_records(MAILSTREAM_ZONE)
    port = free_port()
    process = ServiceProcess(
        "domains",
        "mailstream_domains",
        {
            "AMQP_URL": backends.amqp_url,
            "MONGODB_URI": backends.mongodb_uri,
            "MONGODB_DATABASE": f"{backends.database}_process",
            **service_env(),
            "MAILSTREAM_BOUNCE_DOMAIN": BOUNCE_DOMAIN,
            "DOMAINS_HTTP_PORT": str(port),
            "DOMAINS_SPF_INCLUDE": SPF_INCLUDE,
            "DOMAINS_KEY_ENCRYPTION_KEY": Fernet.generate_key().decode(),
            "DOMAINS_RECHECK_MIN_SECONDS": "0.3",
            "DOMAINS_VERIFIER_POLL_SECONDS": "0.2",
            "DNS_NAMESERVERS": dns.nameserver,
            "DNS_TIMEOUT_SECONDS": "2",
            "LOG_LEVEL": "DEBUG",
        },
        f"http://127.0.0.1:{port}",
        tmp_path,
    )
    process.start()
    yield process
    process.kill()


async def test_the_background_verifier_turns_published_records_into_signing(
    domains_process: ServiceProcess, dns: DnsServer, domain_events: list
) -> None:
    admin = {"X-Internal-Token": TOKEN, "X-Account-Id": "acct-p", "X-Role": "admin"}
    async with httpx.AsyncClient(base_url=domains_process.ops_url, timeout=10) as client:
        assert (await client.get("/readyz")).json()["ready"] is True
        assert (await client.post("/v1/domains", json={"name": "acme.test"})).status_code == 401
        view = (await client.post("/v1/domains", json={"name": "acme.test"}, headers=admin)).json()
        dns.set_records(published(view))  # nobody calls verify: the schedule finds it

        async def verified_event():
            return next((e for e in domain_events if e.status == "verified"), None)

        event = await wait_for(verified_event, timeout=40, what="domain.changed verified")
        assert (event.domain_id, event.signing_selector) == (view["id"], view["dns_records"][0]["selector"])
        key = (
            await client.get(
                "/internal/signing-key?domain=acme.test&account_id=acct-p", headers={"X-Internal-Token": SENDER_TOKEN}
            )
        ).json()
        metrics = (await client.get("/metrics")).text
        assert 'mailstream_domains_record_checks_total{purpose="dkim",status="verified"}' in metrics

    assert domains_process.stop() == 0  # SIGTERM: graceful
    log_text = domains_process.log_path.read_text()
    lines = [json.loads(line) for line in log_text.splitlines() if line.startswith("{")]
    assert any(line["message"] == "dkim key active" for line in lines)
    assert all(line["service"] == "domains" for line in lines)
    pem = key["private_key_pem"]
    numbers = serialization.load_pem_private_key(pem.encode(), None).private_numbers()  # type: ignore[union-attr]
    secrets = [*[line for line in pem.splitlines() if "PRIVATE KEY" not in line][8:], str(numbers.d), str(numbers.p)]
    assert "PRIVATE KEY" not in log_text
    assert not [s for s in secrets if s in log_text]
