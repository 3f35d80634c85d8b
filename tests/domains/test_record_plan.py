"""What a domain must publish and what its checks add up to: pure functions over stored documents, as tables."""

from datetime import UTC, datetime, timedelta

import pytest

from mailstream_domains.record_plan import (
    RecordPolicy,
    domain_status,
    next_check_delay,
    present_records,
    retiring_expired,
    signing_selector,
)

POLICY = RecordPolicy(
    spf_include="_spf.mailstream.test",
    spf_ips=(),
    dmarc_rua="dmarc@mailstream.test",
    bounce_domain="bounces.mailstream.test",
    rotation_grace=timedelta(hours=48),
)
T0 = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)


def key(selector: str, state: str, **extra: object) -> dict:
    return {"_id": f"k-{selector}", "selector": selector, "state": state, "public_key_b64": "QUJD", **extra}


def domain(**checks: str) -> dict:
    """A domain whose last check gave each named record (`spf`, `dkim_<selector>`) that status."""
    return {"name": "acme.test", "checks": {k.replace("dkim_", "dkim:"): {"status": v} for k, v in checks.items()}}


STATUS_CASES = [
    ("nothing checked", domain(), [key("s1", "pending")], "pending"),
    ("pending key and SPF verified", domain(dkim_s1="verified", spf="verified"), [key("s1", "pending")], "verified"),
    ("active key and SPF verified", domain(dkim_s1="verified", spf="verified"), [key("s1", "active")], "verified"),
    ("SPF still pending", domain(dkim_s1="verified", spf="pending"), [key("s1", "active")], "pending"),
    ("SPF wrong", domain(dkim_s1="verified", spf="invalid"), [key("s1", "active")], "invalid"),
    ("DKIM wrong", domain(dkim_s1="invalid", spf="verified"), [key("s1", "active")], "invalid"),
    ("the active key decides, not the rotation's",
     domain(dkim_s1="verified", dkim_s2="invalid", spf="verified"), [key("s1", "active"), key("s2", "pending")],
     "verified"),
    ("no key at all", domain(spf="verified"), [], "pending"),
]  # fmt: skip


@pytest.mark.parametrize(("doc", "keys", "status"), [c[1:] for c in STATUS_CASES], ids=[c[0] for c in STATUS_CASES])
def test_domain_status(doc: dict, keys: list, status: str) -> None:
    assert domain_status(doc, keys) == status


SELECTOR_CASES = [
    ("active and verified", domain(dkim_s1="verified"), [key("s1", "active")], "s1"),
    ("active, not verified", domain(dkim_s1="invalid"), [key("s1", "active")], None),
    ("only pending", domain(dkim_s1="verified"), [key("s1", "pending")], None),
    ("rotation waiting", domain(dkim_s1="verified"), [key("s1", "active"), key("s2", "pending")], "s1"),
]


@pytest.mark.parametrize(
    ("doc", "keys", "selector"), [c[1:] for c in SELECTOR_CASES], ids=[c[0] for c in SELECTOR_CASES]
)
def test_signing_selector(doc: dict, keys: list, selector: str | None) -> None:
    assert signing_selector(doc, keys) == selector


@pytest.mark.parametrize(
    ("attempts", "settled", "delay"),
    [(0, False, 60), (1, False, 120), (3, False, 480), (20, False, 3600), (5, True, 86400)],
)
def test_next_check_delay_backs_off_then_settles(attempts: int, settled: bool, delay: float) -> None:
    assert next_check_delay(attempts, settled=settled, minimum=60, maximum=3600, settled_every=86400) == delay


@pytest.mark.parametrize(
    ("state", "since", "now", "expired"),
    [
        ("retiring", T0, T0 + timedelta(hours=47), False),
        ("retiring", T0, T0 + timedelta(hours=48), True),
        ("retiring", None, T0 + timedelta(days=30), False),
        ("active", T0, T0 + timedelta(days=30), False),
    ],
)
def test_retiring_expired(state: str, since: datetime | None, now: datetime, expired: bool) -> None:
    assert retiring_expired(key("s1", state, retiring_since=since), now, timedelta(hours=48)) is expired


def test_present_records_lists_live_keys_then_spf_and_dmarc() -> None:
    keys = [key("s2", "pending", rotation=True), key("s1", "active"), key("s0", "retiring", retiring_since=T0)]
    shown = present_records(domain(dkim_s1="verified"), keys, POLICY)
    assert [(r["purpose"], r["selector"], r["key_state"], r["required"]) for r in shown] == [
        ("dkim", "s1", "active", True),
        ("dkim", "s2", "pending", True),
        ("dkim", "s0", "retiring", False),
        ("spf", None, None, True),
        ("dmarc", None, None, False),
    ]
    assert shown[0]["status"] == "verified" and shown[1]["status"] == "pending"
    assert shown[1]["detail"] == "not checked yet: publish the record, then verify"
    assert "2026-11-29T10:00" in shown[2]["notes"][0]
    assert shown[3]["value"] == "v=spf1 include:_spf.mailstream.test ~all"
    assert shown[4]["host"] == "_dmarc.acme.test"
