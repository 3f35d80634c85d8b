"""Every diagnostic, produced from real DNS answers: dnsmasq serves the zone each case writes.

modoboa style: a table of published records with the status, problem code and message a person sees.
"""

import pytest

from mailstream_domains import records as rec
from mailstream_domains.dns_lookup import DnsLookup
from mailstream_domains.keys import generate_rsa
from mailstream_domains.record_checks import RecordCheck, check_dkim, check_dmarc, check_spf, keep_known_result
from tests.domains.conftest import MAILSTREAM_ZONE, SPF_INCLUDE
from tests.support.dns_server import A, DnsServer

OURS = generate_rsa(2048)
OTHER = generate_rsa(1024)
SELECTOR = "ms2026111"
GOOD = rec.dkim_value(OURS.public_key_b64)
REQUIRED = [f"include:{SPF_INCLUDE}"]


def dkim_host(domain: str) -> str:
    return rec.dkim_host(SELECTOR, domain)


async def dkim_check(lookup: DnsLookup, domain: str) -> RecordCheck:
    expected = rec.dkim_record(domain, SELECTOR, OURS.public_key_b64)
    answer = await lookup.txt(expected.host)
    return check_dkim(answer, expected=expected, public_key_b64=OURS.public_key_b64, key_type="rsa")


DKIM_CASES = [
    ("published", "acme.test", {dkim_host("acme.test"): [GOOD]}, "verified", None, "DKIM key is published"),
    ("several strings in one record", "acme.test", {dkim_host("acme.test"): [(GOOD[:100], GOOD[100:300], GOOD[300:])]},
     "verified", None, "published"),
    ("whitespace between strings", "acme.test", {dkim_host("acme.test"): [(GOOD[:200] + " ", GOOD[200:])]},
     "verified", None, "published"),
    ("not published (NXDOMAIN)", "acme.test", {"acme.test": ["v=spf1 -all"]}, "pending", "missing", "does not exist (NXDOMAIN)"),
    ("name exists, no TXT", "acme.test", {dkim_host("acme.test"): [A("192.0.2.1")]}, "pending", "missing", "has no TXT record"),
    ("cut at 255 characters", "acme.test", {dkim_host("acme.test"): [(GOOD[:255],)]}, "invalid", "truncated", "cut at 255 characters"),
    ("truncated while copying", "acme.test", {dkim_host("acme.test"): [GOOD[:300]]}, "invalid", "truncated", "(282 of 392 characters)"),
    ("split over two records", "acme.test", {dkim_host("acme.test"): [GOOD[:200], GOOD[200:]]}, "invalid", "badly_split",
     "split across 2 separate TXT records"),
    ("quotes stored as text", "acme.test", {dkim_host("acme.test"): [f'"{GOOD[:255]}" "{GOOD[255:]}"']}, "invalid",
     "badly_split", "quote characters"),
    ("another key", "acme.test", {dkim_host("acme.test"): [rec.dkim_value(OTHER.public_key_b64)]}, "invalid",
     "key_mismatch", "does not match this domain's Mailstream key"),
    ("revoked", "acme.test", {dkim_host("acme.test"): ["v=DKIM1; k=rsa; p="]}, "invalid", "revoked", "revokes the key"),
    ("wrong key type", "acme.test", {dkim_host("acme.test"): [GOOD.replace("k=rsa", "k=ed25519")]}, "invalid",
     "wrong_value", "k=ed25519"),
    ("not a DKIM record", "acme.test", {dkim_host("acme.test"): ["hello world"]}, "invalid", "wrong_value", "is not a DKIM key"),
    ("garbage key", "acme.test", {dkim_host("acme.test"): ["v=DKIM1; k=rsa; p=!!notbase64!!"]}, "invalid", "wrong_value",
     "not valid base64"),
    ("two different DKIM records", "acme.test",
     {dkim_host("acme.test"): [GOOD, rec.dkim_value(OTHER.public_key_b64)]}, "invalid", "several_records", "2 DKIM records"),
    ("SERVFAIL", "acme.servfail.test", {"acme.test": ["v=spf1 -all"]}, "pending", "servfail", "(SERVFAIL): result unknown"),
    ("timeout", "acme.timeout.test", {"acme.test": ["v=spf1 -all"]}, "pending", "timeout", "timed out: result unknown"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("domain", "zone", "status", "problem", "message"), [c[1:] for c in DKIM_CASES], ids=[c[0] for c in DKIM_CASES]
)
async def test_dkim_diagnostics(
    dns: DnsServer, lookup: DnsLookup, domain: str, zone: dict, status: str, problem: str | None, message: str
) -> None:
    dns.set_records({**MAILSTREAM_ZONE, **zone})
    result = await dkim_check(lookup, domain)
    assert (result.status, result.problem) == (status, problem), result.detail
    assert message in result.detail


async def spf_check(lookup: DnsLookup, domain: str) -> RecordCheck:
    answer = await lookup.txt(domain)
    spf = [v for v in answer.values if rec.is_spf(v)]
    count = await lookup.spf_lookup_count(spf[0]) if len(spf) == 1 else None
    return check_spf(answer, required=REQUIRED, plan=rec.plan_spf(spf, REQUIRED), lookup_count=count)


GOOD_SPF = f"v=spf1 include:{SPF_INCLUDE} ~all"
HEAVY = {
    "big.acme.test": ["v=spf1 a mx a:x.acme.test mx:y.acme.test include:big2.acme.test -all"],
    "big2.acme.test": ["v=spf1 a mx ptr exists:x.acme.test a:z.acme.test -all"],
}
SPF_CASES = [
    ("published", {"acme.test": [GOOD_SPF]}, "verified", None, "authorises Mailstream's sending hosts (1 of 10 DNS lookups)"),
    ("merged with existing", {"acme.test": [f"v=spf1 mx include:{SPF_INCLUDE} -all", "google-site-verification=x"]},
     "verified", None, "(2 of 10 DNS lookups)"),
    ("no SPF among TXT records", {"acme.test": ["google-site-verification=x"]}, "pending", "missing",
     f"no SPF record (v=spf1): publish '{GOOD_SPF}'"),
    ("domain without records (NODATA)", {"www.acme.test": [A("192.0.2.1")], "acme.test": [A("192.0.2.1")]}, "pending",
     "missing", "has no TXT record"),
    ("two SPF records", {"acme.test": [GOOD_SPF, "v=spf1 mx -all"]}, "invalid", "several_records",
     f"2 SPF records, a permanent error for receivers (SPF fails for all mail): replace them with the single record "
     f"'v=spf1 include:{SPF_INCLUDE} mx ~all'"),
    ("+all", {"acme.test": [f"v=spf1 include:{SPF_INCLUDE} +all"]}, "invalid", "plus_all", "authorises every server"),
    ("bare all", {"acme.test": [f"v=spf1 include:{SPF_INCLUDE} all"]}, "invalid", "plus_all", "ends with 'all'"),
    ("include missing", {"acme.test": ["v=spf1 mx -all"]}, "invalid", "missing_include",
     f"missing include:{SPF_INCLUDE}): publish 'v=spf1 mx include:{SPF_INCLUDE} -all' instead"),
    ("lookup limit exceeded", {"acme.test": [f"v=spf1 include:{SPF_INCLUDE} include:big.acme.test -all"], **HEAVY},
     "invalid", "lookup_limit", "needs 12 DNS lookups including nested includes"),
    ("SERVFAIL", {"x.test": ["v=spf1 -all"]}, "pending", "servfail", "SERVFAIL"),
    ("timeout", {"x.test": ["v=spf1 -all"]}, "pending", "timeout", "timed out"),
]  # fmt: skip
SPF_DOMAIN = {"SERVFAIL": "acme.servfail.test", "timeout": "acme.timeout.test"}


@pytest.mark.parametrize(("case", "zone", "status", "problem", "message"), SPF_CASES, ids=[c[0] for c in SPF_CASES])
async def test_spf_diagnostics(
    dns: DnsServer, lookup: DnsLookup, case: str, zone: dict, status: str, problem: str | None, message: str
) -> None:
    dns.set_records({**MAILSTREAM_ZONE, **zone})
    result = await spf_check(lookup, SPF_DOMAIN.get(case, "acme.test"))
    assert (result.status, result.problem) == (status, problem), result.detail
    assert message in result.detail


async def dmarc_check(lookup: DnsLookup, domain: str, organisational: str) -> RecordCheck:
    own = await lookup.txt(rec.dmarc_host(domain))
    org = await lookup.txt(rec.dmarc_host(organisational)) if organisational != domain else None
    return check_dmarc(
        own,
        org,
        domain=domain,
        organisational_domain=organisational,
        bounce_domain="bounces.mailstream.test",
        recommended=rec.recommended_dmarc("dmarc@mailstream.test"),
    )


DMARC_CASES = [
    ("recommended", "acme.test", {"_dmarc.acme.test": ["v=DMARC1; p=none; rua=mailto:dmarc@mailstream.test"]},
     "verified", None, "DMARC policy none from _dmarc.acme.test: policy none: monitoring only"),
    ("enforcing and strict", "acme.test", {"_dmarc.acme.test": ["v=DMARC1; p=reject; adkim=s"]}, "verified", None,
     "strict DKIM alignment (adkim=s)"),
    ("alignment through DKIM", "acme.test", {"_dmarc.acme.test": ["v=DMARC1; p=quarantine; rua=mailto:d@acme.test"]},
     "verified", None, "SPF does not align for Mailstream mail (the envelope sender is on bounces.mailstream.test); "
     "DMARC passes through DKIM, signed with d=acme.test"),
    ("subdomain inherits", "mails.acme.test", {"_dmarc.acme.test": ["v=DMARC1; p=reject; sp=quarantine"]}, "verified",
     None, "the policy of acme.test applies to it; policy quarantine"),
    ("missing", "acme.test", {"acme.test": ["v=spf1 -all"]}, "pending", "missing",
     "no DMARC record applies to acme.test: publish 'v=DMARC1; p=none; rua=mailto:dmarc@mailstream.test'"),
    ("invalid policy", "acme.test", {"_dmarc.acme.test": ["v=DMARC1; p=block"]}, "invalid", "wrong_value",
     "p=block is not a policy"),
    ("two records", "acme.test", {"_dmarc.acme.test": ["v=DMARC1; p=none", "v=DMARC1; p=reject"]}, "invalid",
     "several_records", "2 DMARC records"),
    ("timeout", "acme.timeout.test", {"acme.test": ["v=spf1 -all"]}, "pending", "timeout", "timed out"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("domain", "zone", "status", "problem", "message"), [c[1:] for c in DMARC_CASES], ids=[c[0] for c in DMARC_CASES]
)
async def test_dmarc_diagnostics(
    dns: DnsServer, lookup: DnsLookup, domain: str, zone: dict, status: str, problem: str | None, message: str
) -> None:
    dns.set_records({**MAILSTREAM_ZONE, **zone})
    organisational = "acme.test" if domain.endswith(".acme.test") else domain
    result = await dmarc_check(lookup, domain, organisational)
    assert (result.status, result.problem) == (status, problem), result.detail
    assert message in result.detail


def test_a_timeout_keeps_the_last_known_verdict() -> None:
    timeout = RecordCheck("pending", "timeout", "the DNS lookup of x timed out: result unknown, it will be retried")
    kept = keep_known_result(timeout, "verified", "the DKIM key is published at x")
    assert kept.status == "verified"
    assert "last known result: the DKIM key is published" in kept.detail
    assert keep_known_result(timeout, "pending", "missing") == timeout
    missing = RecordCheck("pending", "missing", "gone")
    assert keep_known_result(missing, "verified", "ok") == missing
