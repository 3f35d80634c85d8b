"""Judge DNS answers against the records a domain must publish: a status and a diagnostic a person can act on.

Pure functions over `TxtAnswer` values (what the resolver saw); `dns_lookup` produces them. Statuses:
- verified: the record is published as it must be;
- invalid: something is published but wrong (the detail says what to change);
- pending: nothing is published yet (DNS changes take up to 24-48 hours), or the lookup did not give an answer
  (timeout, SERVFAIL): an unknown result is never reported as "missing".
"""

import base64
import binascii
from dataclasses import dataclass
from typing import Literal

from . import records as rec

Outcome = Literal["answer", "nxdomain", "nodata", "servfail", "timeout"]
Status = Literal["pending", "verified", "invalid"]
PROPAGATION = "DNS changes can take up to 24-48 hours to be visible everywhere"
UNKNOWN_PROBLEMS = frozenset({"timeout", "servfail"})


@dataclass(frozen=True)
class TxtAnswer:
    """The TXT records at one name, each as its character strings, or why there are none."""

    name: str
    outcome: Outcome
    records: tuple[tuple[str, ...], ...] = ()
    error: str = ""

    @property
    def values(self) -> list[str]:
        """Each record's strings joined without separator (RFC 6376 3.6.2.2, RFC 7208 3.3)."""
        return ["".join(strings) for strings in self.records]


@dataclass(frozen=True)
class RecordCheck:
    status: Status
    problem: str | None  # a stable code for programs: missing, timeout, truncated, key_mismatch, ...
    detail: str


def _verified(detail: str) -> RecordCheck:
    return RecordCheck("verified", None, detail)


def _invalid(problem: str, detail: str) -> RecordCheck:
    return RecordCheck("invalid", problem, detail)


def _no_answer(answer: TxtAnswer, what: str, publish: str) -> RecordCheck | None:
    """The check result when the lookup gave no TXT records at all, else None."""
    if answer.outcome == "timeout":
        return RecordCheck(
            "pending", "timeout", f"the DNS lookup of {answer.name} timed out: result unknown, it will be retried"
        )
    if answer.outcome == "servfail":
        return RecordCheck(
            "pending",
            "servfail",
            f"the DNS server could not answer for {answer.name} ({answer.error or 'SERVFAIL'}): result unknown, "
            "it will be retried; if this persists, the domain's name servers are misconfigured",
        )
    if answer.outcome == "nxdomain":
        return RecordCheck(
            "pending", "missing", f"{answer.name} does not exist (NXDOMAIN): publish {what} {publish}. {PROPAGATION}"
        )
    if answer.outcome == "nodata" or not answer.records:
        return RecordCheck(
            "pending", "missing", f"{answer.name} has no TXT record: publish {what} {publish}. {PROPAGATION}"
        )
    return None


# --- DKIM --------------------------------------------------------------------------------------------------------


def _clean_key(text: str) -> str:
    return "".join(text.split())


def _is_base64_key(text: str) -> bool:
    try:
        return len(base64.b64decode(text, validate=True)) > 0
    except (binascii.Error, ValueError):
        return False


def check_dkim(answer: TxtAnswer, *, expected: rec.RecordSpec, public_key_b64: str, key_type: str) -> RecordCheck:
    """Is our public key published at `<selector>._domainkey.<domain>`?"""
    shown = "the DKIM TXT record shown"
    unanswered = _no_answer(answer, "the DKIM TXT record", "shown")
    if unanswered is not None:
        return unanswered
    values = answer.values
    if len(values) > 1 and all(fragment and fragment in expected.value for fragment in values):
        return _invalid(
            "badly_split",
            f"the key is split across {len(values)} separate TXT records at {answer.name}; receivers read "
            "one record, so publish ONE record (a zone file may hold it as several quoted strings in that "
            "record)",
        )
    key_records = [v for v in values if "p=" in v or "v=DKIM1" in v]
    if not key_records:
        found = values[0][:60]
        return _invalid(
            "wrong_value", f"the TXT record at {answer.name} is not a DKIM key ('{found}...'): publish {shown}"
        )
    if len(key_records) > 1:
        return _invalid(
            "several_records",
            f"{answer.name} has {len(key_records)} DKIM records; receivers cannot tell which applies: keep only {shown}",
        )
    value = key_records[0]
    if '"' in value or "\\" in value:
        return _invalid(
            "badly_split",
            f"the value at {answer.name} contains quote characters or backslashes: the DNS provider stored the "
            'quotes as text. Enter the value without quotes (only zone files write it as "..." "..." strings)',
        )
    tags = rec.parse_tags(value)
    if "v" in tags and not value.lstrip().startswith("v=DKIM1"):
        return _invalid("wrong_value", f"v=DKIM1 must come first in the record at {answer.name}: publish {shown}")
    if tags.get("k", "rsa").lower() != key_type:
        return _invalid(
            "wrong_value",
            f"the record at {answer.name} says k={tags.get('k')} but the key is {key_type}: publish {shown}",
        )
    if "p" not in tags:
        return _invalid("wrong_value", f"the record at {answer.name} has no p= public key: publish {shown}")
    published = _clean_key(tags["p"])
    if not published:
        return _invalid("revoked", f"p= is empty at {answer.name}, which revokes the key: publish {shown}")
    if published == public_key_b64:
        return _verified(f"the DKIM key is published at {answer.name}")
    if public_key_b64.startswith(published):
        cut_at_255 = any(len(s.encode()) == rec.DNS_STRING_MAX for r in answer.records for s in r) or (
            len(value.encode()) % rec.DNS_STRING_MAX == 0
        )
        hint = (
            "it was cut at 255 characters, the longest single DNS string: paste the whole value, or in a zone file "
            "write it as several quoted strings of at most 255 characters in one record"
            if cut_at_255
            else "part of the value was lost when it was copied: paste the whole value again"
        )
        return _invalid(
            "truncated",
            f"the key at {answer.name} is truncated ({len(published)} of {len(public_key_b64)} characters): {hint}",
        )
    if published.startswith(public_key_b64):
        return _invalid(
            "wrong_value", f"the key at {answer.name} has extra characters after it: publish exactly {shown}"
        )
    if not _is_base64_key(published):
        return _invalid("wrong_value", f"the key at {answer.name} is not valid base64 (a copy error?): publish {shown}")
    return _invalid(
        "key_mismatch",
        f"the key at {answer.name} does not match this domain's Mailstream key (an old key or another "
        f"provider's?): publish {shown}",
    )


# --- SPF ---------------------------------------------------------------------------------------------------------


def check_spf(
    answer: TxtAnswer, *, required: list[str], plan: rec.SpfPlan, lookup_count: int | None = None
) -> RecordCheck:
    """Does the domain publish exactly one SPF record that authorises Mailstream's sending hosts?"""
    publish = f"'{plan.value}'"
    unanswered = _no_answer(answer, "the SPF record", publish)
    if unanswered is not None:
        return unanswered
    spf = [v for v in answer.values if rec.is_spf(v)]
    if not spf:
        return RecordCheck(
            "pending", "missing", f"{answer.name} has TXT records but no SPF record (v=spf1): publish {publish}"
        )
    if len(spf) > 1:
        return _invalid(
            "several_records",
            f"{answer.name} has {len(spf)} SPF records, a permanent error for receivers (SPF fails for all mail): "
            f"replace them with the single record {publish}",
        )
    record = rec.parse_spf(spf[0])
    all_term = record.all_term
    if all_term is not None and all_term.lower() in ("all", "+all"):
        return _invalid(
            "plus_all",
            f"the SPF record ends with '{all_term}', which authorises every server on the internet to send as this "
            "domain: use ~all or -all",
        )
    missing = rec.missing_spf_mechanisms(record, required)
    if missing:
        return _invalid(
            "missing_include",
            f"the SPF record does not authorise Mailstream's sending hosts (missing {' '.join(missing)}): "
            f"publish {publish} instead",
        )
    if lookup_count is not None and lookup_count > rec.SPF_LOOKUP_LIMIT:
        return _invalid(
            "lookup_limit",
            f"the SPF record needs {lookup_count} DNS lookups including nested includes; receivers stop at "
            f"{rec.SPF_LOOKUP_LIMIT} and fail SPF (permerror): replace some include:/a/mx mechanisms with "
            "ip4:/ip6: ranges",
        )
    counted = f" ({lookup_count} of {rec.SPF_LOOKUP_LIMIT} DNS lookups)" if lookup_count is not None else ""
    return _verified(f"the SPF record authorises Mailstream's sending hosts{counted}")


# --- DMARC -------------------------------------------------------------------------------------------------------


def check_dmarc(
    own: TxtAnswer,
    organisational: TxtAnswer | None,
    *,
    domain: str,
    organisational_domain: str,
    bounce_domain: str,
    recommended: str,
) -> RecordCheck:
    """Evaluate the DMARC policy that applies to `domain` (its own record, else its organisational domain's)."""
    publish = f"'{recommended}' at {rec.dmarc_host(domain)}"
    found: tuple[TxtAnswer, str] | None = None
    for answer, record_domain in ((own, domain), (organisational, organisational_domain)):
        if answer is None:
            continue
        if answer.outcome in ("timeout", "servfail"):
            unanswered = _no_answer(answer, "", "")
            assert unanswered is not None
            return unanswered
        dmarc = [v for v in answer.values if rec.is_dmarc(v)]
        if len(dmarc) > 1:
            return _invalid(
                "several_records",
                f"{answer.name} has {len(dmarc)} DMARC records, so receivers apply none: keep one",
            )
        if dmarc:
            found = (answer, record_domain)
            break
    if found is None:
        return RecordCheck(
            "pending",
            "missing",
            f"no DMARC record applies to {domain}: publish {publish} (monitoring first, with reports). {PROPAGATION}",
        )
    answer, record_domain = found
    text = next(v for v in answer.values if rec.is_dmarc(v))
    evaluation = rec.evaluate_dmarc(text, domain=domain, record_domain=record_domain, bounce_domain=bounce_domain)
    if not evaluation.valid:
        return _invalid("wrong_value", f"the DMARC record at {answer.name} is invalid: " + "; ".join(evaluation.errors))
    return _verified(f"DMARC policy {evaluation.policy} from {answer.name}: " + "; ".join(evaluation.notes))


def keep_known_result(new: RecordCheck, previous_status: str | None, previous_detail: str | None) -> RecordCheck:
    """A timeout or SERVFAIL says nothing about the record: keep a previous verified/invalid verdict, and say so."""
    if new.problem in UNKNOWN_PROBLEMS and previous_status in ("verified", "invalid"):
        return RecordCheck(previous_status, new.problem, f"{new.detail}; last known result: {previous_detail}")  # type: ignore[arg-type]
    return new
