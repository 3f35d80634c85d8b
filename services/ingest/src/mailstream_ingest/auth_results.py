"""Authentication results as plain data: DMARC alignment and policy evaluation, the RFC 8601 header, the summary.

The lookups live in `dns_checks.py`; everything here is a function of what they found, so it is tested by tables.
"""

import re
from dataclasses import dataclass, field

from publicsuffixlist import PublicSuffixList

from mailstream_common.contracts.mail import AuthenticationResult

# The public suffix list, bundled with the package (no download at run time): the DMARC organisational domain.
_PUBLIC_SUFFIXES = PublicSuffixList()


def organizational_domain(domain: str) -> str:
    """RFC 7489 section 3.2: the public suffix plus one label (the domain itself when it is a bare suffix)."""
    domain = domain.lower().rstrip(".")
    return _PUBLIC_SUFFIXES.privatesuffix(domain) or domain


def aligned(a: str, b: str, mode: str) -> bool:
    a, b = a.lower().rstrip("."), b.lower().rstrip(".")
    return a == b if mode == "s" else organizational_domain(a) == organizational_domain(b)


def parse_dmarc_record(record: str) -> dict[str, str] | None:
    tags = {}
    for part in record.split(";"):
        key, _, value = part.strip().partition("=")
        if key:
            tags[key.strip().lower()] = value.strip()
    return tags if tags.get("v", "").upper() == "DMARC1" else None


@dataclass
class DkimOutcome:
    result: str
    domain: str | None = None
    selector: str | None = None


@dataclass
class Checks:
    spf: str = "none"
    spf_domain: str | None = None
    dkim: list[DkimOutcome] = field(default_factory=list)
    dmarc: str = "none"
    dmarc_policy: str | None = None


def evaluate_dmarc(record: dict[str, str] | None, from_domain: str, checks: Checks) -> tuple[str, str | None]:
    """The DMARC result and policy for a published record (None: no record) and the SPF and DKIM outcomes."""
    if record is None:
        return "none", None
    policy = record.get("p", "none").lower()
    spf_ok = (
        checks.spf == "pass" and checks.spf_domain and aligned(checks.spf_domain, from_domain, record.get("aspf", "r"))
    )
    dkim_ok = any(
        d.result == "pass" and d.domain and aligned(d.domain, from_domain, record.get("adkim", "r"))
        for d in checks.dkim
    )
    if spf_ok or dkim_ok:
        return "pass", policy
    if checks.spf == "temperror" or any(d.result == "temperror" for d in checks.dkim):
        return "temperror", policy
    return "fail", policy


_PVALUE_SAFE = re.compile(r"^(?:[A-Za-z0-9.!#$%&'*+/=?^_`{|}~@-]+|\"[^\"\\\\\r\n]*\"@[A-Za-z0-9.-]+)$")


def _pvalue(value: str) -> str:
    """A property value as RFC 8601 allows it: bare when it is a plain address or token, else a quoted string."""
    if _PVALUE_SAFE.match(value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\r", "").replace("\n", "") + '"'


def format_header(authserv_id: str, checks: Checks, mail_from: str, from_domain: str | None) -> str:
    parts = [authserv_id]
    spf_part = f"spf={checks.spf}"
    if mail_from:
        spf_part += f" smtp.mailfrom={_pvalue(mail_from)}"
    parts.append(spf_part)
    if checks.dkim:
        for outcome in checks.dkim:
            dkim_part = f"dkim={outcome.result}"
            if outcome.domain:
                dkim_part += f" header.d={_pvalue(outcome.domain)}"
            if outcome.selector:
                dkim_part += f" header.s={_pvalue(outcome.selector)}"
            parts.append(dkim_part)
    else:
        parts.append("dkim=none")
    dmarc_part = f"dmarc={checks.dmarc}"
    if checks.dmarc_policy:
        dmarc_part += f" (p={checks.dmarc_policy})"
    if from_domain:
        dmarc_part += f" header.from={_pvalue(from_domain)}"
    parts.append(dmarc_part)
    return "; ".join(parts)


def summarise(checks: Checks, header: str) -> AuthenticationResult:
    dkim_result = "none"
    if checks.dkim:
        order = ("pass", "fail", "temperror", "permerror", "neutral", "none")
        dkim_result = min((d.result for d in checks.dkim), key=lambda r: order.index(r) if r in order else len(order))
    return AuthenticationResult(spf=checks.spf, dkim=dkim_result, dmarc=checks.dmarc, header=header)
