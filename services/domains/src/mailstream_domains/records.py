"""The DNS records a sending domain must publish, built from plain data (no I/O).

How the records work together for mail sent through Mailstream:
- DKIM: sender signs with `d=<customer domain>` and the selector of the active key; the public key lives in a TXT
  record at `<selector>._domainkey.<domain>`. Its value is longer than one DNS string (255 bytes) for 2048-bit
  keys, so zone files must hold it as several quoted strings in ONE record; we give both forms.
- Return path: the envelope sender (MAIL FROM) is a VERP address on Mailstream's bounce domain
  (`MAILSTREAM_BOUNCE_DOMAIN`), so bounces come back to Mailstream and the customer publishes NO return-path
  record. The price: SPF is evaluated for the bounce domain, which never aligns with the customer's From domain.
- DMARC therefore passes through DKIM alignment: `d=` is the customer domain (or, for a subdomain such as
  mails.acme.com, the subdomain itself, which aligns with From addresses at mails.acme.com in strict mode and with
  anything under acme.com in relaxed mode).
- SPF on the customer domain still authorises Mailstream's sending hosts: receivers and analysis tools that test
  the From domain, and any mail whose envelope uses the customer domain, then pass; it is what the product promises
  the customer's IT team.
"""

import re
from dataclasses import dataclass, field

DNS_STRING_MAX = 255
SPF_LOOKUP_LIMIT = 10
# Mechanisms and modifiers that cost a DNS lookup (RFC 7208 section 4.6.4).
_LOOKUP_TERMS = ("include", "a", "mx", "ptr", "exists", "redirect")


@dataclass(frozen=True)
class RecordSpec:
    """One record to publish: what for, where, and the exact value."""

    purpose: str  # dkim | spf | dmarc
    type: str
    host: str
    value: str
    notes: tuple[str, ...] = ()
    selector: str | None = None

    @property
    def zone_value(self) -> str:
        """The value as a zone file writes it: quoted strings of at most 255 bytes, in ONE record."""
        return " ".join(f'"{part}"' for part in split_txt(self.value))


def split_txt(value: str) -> list[str]:
    """Split a TXT value into the <=255-byte character strings of one DNS record (values here are ASCII)."""
    data = value.encode("ascii")
    if not data:
        return [""]
    return [data[i : i + DNS_STRING_MAX].decode("ascii") for i in range(0, len(data), DNS_STRING_MAX)]


# --- DKIM --------------------------------------------------------------------------------------------------------


def dkim_host(selector: str, domain: str) -> str:
    return f"{selector}._domainkey.{domain}"


def dkim_value(public_key_b64: str, key_type: str = "rsa") -> str:
    """RFC 6376 key record; `public_key_b64` is the SubjectPublicKeyInfo (RSA) or the raw key (Ed25519)."""
    return f"v=DKIM1; k={key_type}; p={public_key_b64}"


def dkim_record(domain: str, selector: str, public_key_b64: str, key_type: str = "rsa") -> RecordSpec:
    return RecordSpec("dkim", "TXT", dkim_host(selector, domain), dkim_value(public_key_b64, key_type), (), selector)


def parse_tags(value: str) -> dict[str, str]:
    """`tag=value; tag=value` (DKIM and DMARC records); later duplicates are ignored, names lower-cased."""
    tags: dict[str, str] = {}
    for part in value.split(";"):
        name, sep, tag_value = part.partition("=")
        name = name.strip().lower()
        if sep and name and name not in tags:
            tags[name] = tag_value.strip()
    return tags


# --- SPF ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SpfRecord:
    """A parsed SPF record: the terms in order (without `v=spf1`), split at the final `all`."""

    terms: tuple[str, ...]

    @property
    def all_term(self) -> str | None:
        for term in self.terms:
            if term.lower().lstrip("+-~?") == "all":
                return term
        return None

    @property
    def mechanisms(self) -> tuple[str, ...]:
        return tuple(t for t in self.terms if t != self.all_term)

    def text(self) -> str:
        return " ".join(("v=spf1", *self.terms))


def is_spf(text: str) -> bool:
    lowered = text.strip().lower()
    return lowered == "v=spf1" or lowered.startswith("v=spf1 ")


def parse_spf(text: str) -> SpfRecord:
    return SpfRecord(tuple(text.split()[1:]))


def spf_lookup_targets(record: SpfRecord) -> tuple[int, list[str]]:
    """(DNS lookups this record itself costs, the domains of its include:/redirect= that cost more lookups)."""
    count = 0
    nested: list[str] = []
    for term in record.terms:
        bare = term.lstrip("+-~?")
        name = re.split(r"[:=/]", bare, maxsplit=1)[0].lower()
        if name in _LOOKUP_TERMS:
            count += 1
            if name in ("include", "redirect") and len(bare) > len(name) + 1:
                nested.append(bare[len(name) + 1 :].lower().rstrip("."))
    return count, nested


def required_spf_mechanisms(include: str | None, ips: list[str]) -> list[str]:
    """What a customer's SPF record must contain for Mailstream's sending hosts."""
    mechanisms = [f"include:{include}"] if include else []
    for ip in ips:
        mechanisms.append(f"ip6:{ip}" if ":" in ip else f"ip4:{ip}")
    return mechanisms


def _has_mechanism(record: SpfRecord, mechanism: str) -> bool:
    wanted = mechanism.lower()
    return any(term.lower().lstrip("+") == wanted for term in record.terms)


def missing_spf_mechanisms(record: SpfRecord, required: list[str]) -> list[str]:
    return [m for m in required if not _has_mechanism(record, m)]


@dataclass(frozen=True)
class SpfPlan:
    """The single SPF record to publish and what a person should know about it."""

    value: str
    warnings: tuple[str, ...] = field(default=())


def plan_spf(existing: list[str], required: list[str], *, default_all: str = "~all") -> SpfPlan:
    """Merge Mailstream's mechanisms into the domain's SPF record(s), keeping their mechanisms and `all` qualifier.

    `existing` are the TXT values at the domain that are SPF records (zero, one, or several: a permerror that this
    plan fixes by merging them into one).
    """
    warnings: list[str] = []
    records = [parse_spf(text) for text in existing if is_spf(text)]
    if len(records) > 1:
        records.sort(key=SpfRecord.text)  # DNS returns records in any order; the merge must not depend on it
        warnings.append(
            f"the domain has {len(records)} SPF records, which receivers treat as a permanent error: "
            "publish only this merged record and delete the others"
        )
    kept: list[str] = []
    all_term: str | None = None
    redirect: str | None = None
    for record in records:
        for term in record.terms:
            lowered = term.lower()
            if lowered.lstrip("+-~?") == "all":
                all_term = all_term or term
            elif lowered.startswith("redirect="):
                redirect = redirect or term
            elif lowered not in (t.lower() for t in kept):
                kept.append(term)
    added = [m for m in required if m.lower() not in (t.lower().lstrip("+") for t in kept)]
    terms = kept + added
    if all_term is not None:
        terms.append(all_term)
    elif redirect is not None:
        terms.append(redirect)  # redirect= only applies when no `all` exists, so keep it where there is none
    else:
        terms.append(default_all)
    if all_term is not None and all_term.lower() in ("all", "+all"):
        warnings.append(f"'{all_term}' lets every server on the internet send as this domain; use ~all or -all instead")
    plan = SpfRecord(tuple(terms))
    direct, _ = spf_lookup_targets(plan)
    if direct > SPF_LOOKUP_LIMIT:
        warnings.append(
            f"this record needs {direct} DNS lookups before counting nested includes; SPF allows "
            f"{SPF_LOOKUP_LIMIT}, beyond which receivers fail it (permerror): replace some include:/a/mx "
            "mechanisms with ip4:/ip6: ranges"
        )
    return SpfPlan(plan.text(), tuple(warnings))


# --- DMARC -------------------------------------------------------------------------------------------------------


def dmarc_host(domain: str) -> str:
    return f"_dmarc.{domain}"


def recommended_dmarc(rua: str) -> str:
    """Start in monitoring mode (p=none) with aggregate reports; tighten to quarantine/reject once reports are
    clean."""
    address = rua if rua.startswith("mailto:") else f"mailto:{rua}"
    return f"v=DMARC1; p=none; rua={address}"


def is_dmarc(text: str) -> bool:
    return text.strip().lower().replace(" ", "").startswith("v=dmarc1")


@dataclass(frozen=True)
class DmarcEvaluation:
    """What an existing DMARC record means for mail sent through Mailstream."""

    valid: bool
    policy: str | None
    errors: tuple[str, ...]
    notes: tuple[str, ...]


_POLICIES = ("none", "quarantine", "reject")


def evaluate_dmarc(text: str, *, domain: str, record_domain: str, bounce_domain: str) -> DmarcEvaluation:
    """Check `text` (found at `_dmarc.<record_domain>`) for mail From `domain`, signed with d=`domain`."""
    tags = parse_tags(text)
    errors: list[str] = []
    notes: list[str] = []
    first = text.strip().split(";", 1)[0].replace(" ", "")
    if first != "v=DMARC1":
        errors.append("the record must start with v=DMARC1 (exactly, first)")
    inherited = record_domain != domain
    policy = tags.get("sp", tags.get("p")) if inherited else tags.get("p")
    if "p" not in tags:
        errors.append("the record has no p= policy tag (p=none, p=quarantine or p=reject)")
    elif tags["p"].lower() not in _POLICIES:
        errors.append(f"p={tags['p']} is not a policy: use none, quarantine or reject")
    if policy is not None and policy.lower() not in _POLICIES:
        errors.append(f"sp={policy} is not a policy: use none, quarantine or reject")
    if errors:
        return DmarcEvaluation(False, None, tuple(errors), ())
    assert policy is not None
    policy = policy.lower()
    if inherited:
        notes.append(f"{domain} has no DMARC record of its own: the policy of {record_domain} applies to it")
    if policy == "none":
        notes.append("policy none: monitoring only, receivers deliver mail that fails DMARC as usual")
    else:
        notes.append(
            f"policy {policy}: mail From this domain that is not DKIM-signed by it is {policy}ed, "
            "so publish the DKIM record before sending through Mailstream"
        )
    if tags.get("adkim", "r").lower() == "s":
        notes.append(f"strict DKIM alignment (adkim=s): only mail From addresses exactly at {domain} aligns")
    notes.append(
        f"SPF does not align for Mailstream mail (the envelope sender is on {bounce_domain}); "
        f"DMARC passes through DKIM, signed with d={domain}"
    )
    pct = tags.get("pct")
    if pct and pct != "100":
        notes.append(f"pct={pct}: the policy applies to {pct}% of failing mail")
    if "rua" not in tags:
        notes.append("no rua= report address: add one to learn who sends as this domain")
    return DmarcEvaluation(True, policy, (), tuple(notes))
