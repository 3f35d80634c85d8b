"""The whole system as real processes, with a victim account whose sending domain is verified (so its DKIM
private key exists and the signing-key route would hand it out), and attackers holding keys of other accounts."""

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.e2e.conftest import System, running_system
from tests.support.backends import Backends
from tests.support.dns_server import DnsServer

VICTIM_DOMAIN = "victim.test"
SPF_INCLUDE = "_spf.mailstream.test"  # the domains service's default DOMAINS_SPF_INCLUDE
MAILSTREAM_ZONE = {SPF_INCLUDE: ["v=spf1 ip4:127.0.0.1 -all"]}


@dataclass
class Secured:
    system: System
    victim_account: str
    victim_domain_id: str
    keys: dict[str, str]  # "victim-admin", "attacker-agent", "attacker-admin" (the attacker keys: other accounts)

    def client(self, who: str) -> httpx.Client:
        return self.system.client(self.keys[who])


def _account(system: System, name: str) -> tuple[str, str, str]:
    """account id, admin key, agent key."""
    made = system.cli("accounts", "create", "--name", name)
    with system.client(made["api_key"]) as admin:
        agent = admin.post("/v1/api-keys", json={"role": "agent", "name": "agent"})
        assert agent.status_code == 201, agent.text
    return made["account_id"], made["api_key"], agent.json()["api_key"]


@pytest.fixture(scope="package")
def secured(backends: Backends, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    dns = DnsServer.start(MAILSTREAM_ZONE)
    try:
        with running_system(
            backends, tmp_path_factory, "security", {"DNS_NAMESERVERS": dns.nameserver, "DNS_TIMEOUT_SECONDS": "3"}
        ) as system:
            victim, victim_admin, _ = _account(system, "Victim")
            _, _, attacker_agent = _account(system, "Attacker A")
            _, attacker_admin, _ = _account(system, "Attacker B")
            with system.client(victim_admin) as api:
                created = api.post("/v1/domains", json={"name": VICTIM_DOMAIN, "dkim_key_bits": 1024})
                assert created.status_code == 201, created.text
                domain = created.json()
                zone = {name: list(values) for name, values in MAILSTREAM_ZONE.items()}
                for record in domain["dns_records"]:
                    zone.setdefault(record["host"].rstrip("."), []).append(record["value"])
                dns.set_records(zone)
                verified = api.post(f"/v1/domains/{domain['id']}/verify")
                assert verified.status_code == 200 and verified.json()["status"] == "verified", verified.text
            yield Secured(
                system,
                victim,
                domain["id"],
                {"victim-admin": victim_admin, "attacker-agent": attacker_agent, "attacker-admin": attacker_admin},
            )
    finally:
        dns.stop()
