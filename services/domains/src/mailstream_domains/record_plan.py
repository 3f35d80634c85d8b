"""What a domain must publish right now, with the state of each record: a pure view of stored documents.

The list a customer sees (`dns_records`) is: one DKIM record per live key generation (the active one, a pending
one during a rotation, and retiring ones that must stay until their grace period ends), the single SPF record to
publish (merged with the SPF record the domain already had at the last check), and the DMARC record.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from . import records as rec


@dataclass(frozen=True)
class RecordPolicy:
    """Deployment settings that decide the record values."""

    spf_include: str | None
    spf_ips: tuple[str, ...]
    dmarc_rua: str
    bounce_domain: str
    rotation_grace: timedelta

    @property
    def required_spf(self) -> list[str]:
        return rec.required_spf_mechanisms(self.spf_include, list(self.spf_ips))


@dataclass(frozen=True)
class ExpectedRecord:
    """A record to publish, with the key that backs it (DKIM) and its rotation role."""

    spec: rec.RecordSpec
    check_key: str  # key into the domain's `checks`
    key_state: str | None = None  # pending | active | retiring (DKIM only)
    key_id: str | None = None
    algorithm: str | None = None
    public_key_b64: str | None = None
    notes: tuple[str, ...] = ()


def dkim_check_key(selector: str) -> str:
    return f"dkim:{selector}"


def _key_notes(key: dict[str, Any], grace: timedelta) -> tuple[str, ...]:
    state = key["state"]
    if state == "pending" and key.get("rotation"):
        return ("new key of a rotation: publish it next to the current one; signing switches once it verifies",)
    if state == "pending":
        return ("publish this record; signing starts once it verifies",)
    if state == "retiring":
        since = key.get("retiring_since")
        until = f" until {(since + grace).isoformat(timespec='minutes')}" if since else ""
        return (f"retiring: no longer signs, keep it published{until} so mail already sent still verifies",)
    return ("signs outgoing mail",)


def expected_records(domain: dict[str, Any], keys: list[dict[str, Any]], policy: RecordPolicy) -> list[ExpectedRecord]:
    name = domain["name"]
    expected: list[ExpectedRecord] = []
    order = {"active": 0, "pending": 1, "retiring": 2}
    for key in sorted(keys, key=lambda k: order.get(k["state"], 3)):
        notes = _key_notes(key, policy.rotation_grace)
        spec = rec.dkim_record(name, key["selector"], key["public_key_b64"], "rsa")
        expected.append(
            ExpectedRecord(
                spec, dkim_check_key(key["selector"]), key["state"], key["_id"], "rsa", key["public_key_b64"], notes
            )
        )
        ed = key.get("ed25519")
        if ed:
            spec = rec.dkim_record(name, ed["selector"], ed["public_key_b64"], "ed25519")
            expected.append(
                ExpectedRecord(
                    spec,
                    dkim_check_key(ed["selector"]),
                    key["state"],
                    key["_id"],
                    "ed25519",
                    ed["public_key_b64"],
                    (*notes, "Ed25519 key: a second signature for receivers that support RFC 8463"),
                )
            )
    plan = spf_plan(domain, policy)
    expected.append(ExpectedRecord(rec.RecordSpec("spf", "TXT", name, plan.value), "spf", notes=plan.warnings))
    dmarc = rec.RecordSpec("dmarc", "TXT", rec.dmarc_host(name), rec.recommended_dmarc(policy.dmarc_rua))
    expected.append(
        ExpectedRecord(
            dmarc,
            "dmarc",
            notes=(
                "recommended, not required: if a DMARC record already applies to this domain keep it; mail from "
                f"Mailstream passes DMARC through DKIM (d={name}), not SPF (bounces use {policy.bounce_domain})",
            ),
        )
    )
    return expected


def spf_plan(domain: dict[str, Any], policy: RecordPolicy) -> rec.SpfPlan:
    return rec.plan_spf(list(domain.get("observed_spf") or []), policy.required_spf)


def present_records(domain: dict[str, Any], keys: list[dict[str, Any]], policy: RecordPolicy) -> list[dict[str, Any]]:
    """The `dns_records` of the API: what to publish, its last status and diagnostic."""
    checks = domain.get("checks") or {}
    shown = []
    for item in expected_records(domain, keys, policy):
        check = checks.get(item.check_key) or {}
        shown.append(
            {
                "purpose": item.spec.purpose,
                "type": item.spec.type,
                "host": item.spec.host,
                "value": item.spec.value,
                "zone_value": item.spec.zone_value,
                "status": check.get("status", "pending"),
                "detail": check.get("detail") or "not checked yet: publish the record, then verify",
                "problem": check.get("problem"),
                "checked_at": check.get("checked_at"),
                "selector": item.spec.selector,
                "algorithm": item.algorithm,
                "key_state": item.key_state,
                "required": item.spec.purpose != "dmarc" and item.key_state != "retiring",
                "notes": list(item.notes),
            }
        )
    return shown


def domain_status(domain: dict[str, Any], keys: list[dict[str, Any]]) -> str:
    """verified when the signing DKIM record and SPF are verified; invalid when either is wrong; else pending."""
    checks = domain.get("checks") or {}
    signing = next((k for k in keys if k["state"] == "active"), None) or next(
        (k for k in keys if k["state"] == "pending"), None
    )
    required = [dkim_check_key(signing["selector"])] if signing else []
    required.append("spf")
    statuses = [(checks.get(name) or {}).get("status", "pending") for name in required]
    if "invalid" in statuses:
        return "invalid"
    if signing is not None and all(s == "verified" for s in statuses):
        return "verified"
    return "pending"


def signing_selector(domain: dict[str, Any], keys: list[dict[str, Any]]) -> str | None:
    """The selector sender signs with: the active key's, once its record is verified."""
    checks = domain.get("checks") or {}
    active = next((k for k in keys if k["state"] == "active"), None)
    if active and (checks.get(dkim_check_key(active["selector"])) or {}).get("status") == "verified":
        return active["selector"]
    return None


def next_check_delay(attempts: int, *, settled: bool, minimum: float, maximum: float, settled_every: float) -> float:
    """Seconds until the next automatic check: doubling from `minimum` to `maximum` while records propagate;
    `settled_every` once everything required is verified."""
    if settled:
        return settled_every
    return min(maximum, minimum * 2 ** max(0, attempts))


def retiring_expired(key: dict[str, Any], now: datetime, grace: timedelta) -> bool:
    since = key.get("retiring_since")
    return key["state"] == "retiring" and since is not None and now >= since + grace
