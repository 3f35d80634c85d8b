"""Fixtures of the domains tests: a real DNS server, and the domains app in-process over real Mongo and RabbitMQ."""

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import timedelta

import httpx
import pytest
from pymongo.asynchronous.database import AsyncDatabase

from mailstream_common import mongo
from mailstream_common.broker import Broker
from mailstream_domains.api.app import create_app
from mailstream_domains.dns_lookup import DnsLookup
from mailstream_domains.keys import KeyVault
from mailstream_domains.manager import DomainManager
from mailstream_domains.record_plan import RecordPolicy
from mailstream_domains.repositories import INDEXES
from mailstream_domains.repositories.domains import DomainRepository
from tests.support.dns_server import DnsServer
from tests.support.service_tokens import GATEWAY_TOKEN, SENDER_TOKEN, callers

INTERNAL_TOKEN = GATEWAY_TOKEN  # what the gateway sends on the public routes
SPF_INCLUDE = "_spf.mailstream.test"
SENDING_IP = "127.0.0.1"
BOUNCE_DOMAIN = "bounces.mailstream.test"
# Mailstream's own zone: the include every customer SPF record names, authorising the sending IP.
MAILSTREAM_ZONE = {SPF_INCLUDE: [f"v=spf1 ip4:{SENDING_IP} -all"]}

POLICY = RecordPolicy(
    spf_include=SPF_INCLUDE,
    spf_ips=(),
    dmarc_rua="dmarc-reports@mailstream.test",
    bounce_domain=BOUNCE_DOMAIN,
    rotation_grace=timedelta(hours=48),
)


@pytest.fixture(scope="session")
def dns() -> Iterator[DnsServer]:
    server = DnsServer.start(MAILSTREAM_ZONE, servfail_zones=["servfail.test"], timeout_zones=["timeout.test"])
    yield server
    server.stop()


@pytest.fixture
def lookup(dns: DnsServer) -> DnsLookup:
    dns.set_records(MAILSTREAM_ZONE)  # nothing of an earlier test's zone stays published
    return DnsLookup([dns.nameserver], timeout=2.0)  # generous: the test machine may be heavily loaded


def headers(account_id: str = "acct-a", role: str = "admin", token: str = INTERNAL_TOKEN) -> dict[str, str]:
    return {"X-Internal-Token": token, "X-Account-Id": account_id, "X-Role": role}


def sender_headers() -> dict[str, str]:
    """What the sender sends to /internal/signing-key: its own credential, nothing else."""
    return {"X-Internal-Token": SENDER_TOKEN}


@dataclass
class DomainsHarness:
    manager: DomainManager
    client: httpx.AsyncClient
    db: AsyncDatabase


@pytest.fixture
async def harness(mongo_db: AsyncDatabase, broker: Broker, lookup: DnsLookup) -> AsyncIterator[DomainsHarness]:
    await mongo.ensure_indexes(mongo_db, INDEXES)
    manager = DomainManager(DomainRepository(mongo_db), KeyVault(), lookup, broker.publish, POLICY)
    app = create_app(manager, callers(), {})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://domains") as client:
        yield DomainsHarness(manager, client, mongo_db)


def published(domain_view: dict, *purposes: str) -> dict[str, list[str]]:
    """The zone a diligent IT team publishes from the dns_records the API showed (plus Mailstream's own zone)."""
    zone: dict[str, list[str]] = {name: list(values) for name, values in MAILSTREAM_ZONE.items()}
    for record in domain_view["dns_records"]:
        if not purposes or record["purpose"] in purposes:
            zone.setdefault(record["host"], []).append(record["value"])
    return zone


@pytest.fixture
async def domain_events(broker: Broker) -> list:
    """Every domain.changed published while the test runs, in order (a replica queue bound before the test)."""
    import uuid

    from mailstream_common import topology
    from mailstream_common.contracts import DomainChanged

    seen: list[DomainChanged] = []

    async def handle(event: DomainChanged, _delivery: object) -> None:
        seen.append(event)

    broker.consume(topology.replica_queue("domains-test", uuid.uuid4().hex, (DomainChanged,)), handle, DomainChanged)
    await broker.start()
    return seen


async def create(harness: DomainsHarness, name: str = "acme.test", account: str = "acct-a", **extra) -> dict:
    response = await harness.client.post("/v1/domains", json={"name": name, **extra}, headers=headers(account))
    assert response.status_code == 201, response.text
    return response.json()


def record(view: dict, purpose: str, key_state: str | None = None) -> dict:
    matches = [r for r in view["dns_records"] if r["purpose"] == purpose and key_state in (None, r["key_state"])]
    assert len(matches) == 1, view["dns_records"]
    return matches[0]


async def events_seen(seen: list, count: int) -> list | None:
    return list(seen) if len(seen) >= count else None
