"""Issue 9 against the running system: no key of another account reaches an internal route of domains, automation
or sender through the gateway, whatever the path looks like on the wire, and each service credential opens only the
routes meant for its service."""

import re

import httpx
import pytest

from mailstream_common.public_api import PUBLIC_OPERATIONS
from tests.security.conftest import VICTIM_DOMAIN, Secured
from tests.security.corpus import traversal_targets
from tests.support.raw_http import raw_request
from tests.support.service_tokens import GATEWAY_TOKEN, SENDER_TOKEN

pytestmark = pytest.mark.e2e

KEY_READS = re.compile(r"^mailstream_domains_signing_key_reads_total\{[^}]*\} (\S+)$", re.MULTILINE)


def key_reads(secured: Secured) -> float:
    """Private-key reads the domains service counted so far (its /metrics, straight, not through the gateway)."""
    text = httpx.get(secured.system.env["DOMAINS_URL"] + "/metrics", timeout=10).text
    return sum(float(value) for value in KEY_READS.findall(text))


@pytest.mark.parametrize("attacker", ["attacker-agent", "attacker-admin"])
def test_no_traversal_through_any_prefix_reaches_an_internal_route(secured: Secured, attacker: str) -> None:
    reads_before = key_reads(secured)
    headers = {"Authorization": f"Bearer {secured.keys[attacker]}"}
    answers = {}
    for name, target in traversal_targets(VICTIM_DOMAIN, secured.victim_account).items():
        for method in ("GET", "POST"):
            response = raw_request(secured.system.gateway, method, target, headers)
            assert target in response.sent.split(b"\r\n", 1)[0], "the raw target went on the wire unchanged"
            answers[f"{method} {name}"] = (response.status, response.text)
    failures = {
        name: (status, body[:120])
        for name, (status, body) in answers.items()
        if status not in (400, 404) or "PRIVATE KEY" in body or "private_key" in body
    }
    assert not failures, failures
    assert key_reads(secured) == reads_before, "a private key was read while the corpus ran"


def test_the_gateway_answers_404_for_routes_outside_the_allow_list(secured: Secured) -> None:
    with secured.client("attacker-admin") as api:
        for path in ("/v1/domains/x/internal", "/v1/automation/readyz", "/v1/suppressions/a/b"):
            assert api.get(path).status_code == 404, path
        wrong = api.request("OPTIONS", "/v1/domains")
        assert (wrong.status_code, wrong.headers["allow"]) == (405, "GET, POST")


def test_the_account_comes_from_the_key_never_from_the_client(secured: Secured) -> None:
    victim = {"account_id": secured.victim_account}
    with secured.client("attacker-admin") as api:
        listed = api.get("/v1/domains", params=victim)
        assert listed.status_code == 200 and listed.json()["items"] == []
        assert api.get(f"/v1/domains/{secured.victim_domain_id}", params=victim).status_code == 404
        forged = api.get(
            "/v1/domains", headers={"X-Account-Id": secured.victim_account, "X-Internal-Token": GATEWAY_TOKEN}
        )
        assert forged.status_code == 200 and forged.json()["items"] == []
    with secured.client("victim-admin") as api:
        assert [d["name"] for d in api.get("/v1/domains").json()["items"]] == [VICTIM_DOMAIN]


def test_only_the_senders_credential_opens_the_signing_key_route(secured: Secured) -> None:
    url = secured.system.env["DOMAINS_URL"] + "/internal/signing-key"
    params = {"domain": VICTIM_DOMAIN, "account_id": secured.victim_account}
    for headers, status in (
        ({}, 401),
        ({"X-Internal-Token": "not-a-token"}, 401),
        ({"X-Internal-Token": GATEWAY_TOKEN}, 403),
        ({"X-Internal-Token": GATEWAY_TOKEN, "X-Account-Id": secured.victim_account, "X-Role": "admin"}, 403),
    ):
        refused = httpx.get(url, params=params, headers=headers, timeout=10)
        assert refused.status_code == status, (headers, refused.text)
        assert "PRIVATE KEY" not in refused.text
    reads_before = key_reads(secured)
    granted = httpx.get(url, params=params, headers={"X-Internal-Token": SENDER_TOKEN}, timeout=10)
    assert granted.status_code == 200 and "PRIVATE KEY" in granted.json()["private_key_pem"]
    assert key_reads(secured) == reads_before + 1
    log = secured.system.processes["domains"].logs(400)
    assert "signing key read" in log and "PRIVATE KEY" not in log
    # The sender's credential, in turn, opens none of the public routes of the services.
    for base, path in (("DOMAINS_URL", "/v1/domains"), ("AUTOMATION_URL", "/v1/automation/rules")):
        sender_call = httpx.get(
            secured.system.env[base] + path,
            headers={"X-Internal-Token": SENDER_TOKEN, "X-Account-Id": secured.victim_account, "X-Role": "admin"},
            timeout=10,
        )
        assert sender_call.status_code == 403, (base, sender_call.text)


def test_the_gateways_document_lists_exactly_the_allowed_upstream_operations(secured: Secured) -> None:
    document = httpx.get(secured.system.gateway + "/openapi.json", timeout=10).json()
    upstream_prefixes = ("/v1/domains", "/v1/automation", "/v1/suppressions")
    documented = {
        (method.upper(), path)
        for path, item in document["paths"].items()
        if path.startswith(upstream_prefixes)
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    }
    assert documented == {(op.method, op.template) for op in PUBLIC_OPERATIONS}
