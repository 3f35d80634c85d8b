"""The records to publish: pure, table-driven."""

import pytest

from mailstream_domains import records as rec

REQUIRED = ["include:_spf.mailstream.test"]


@pytest.mark.parametrize(
    ("value", "parts"),
    [
        ("", [""]),
        ("short", ["short"]),
        ("a" * 255, ["a" * 255]),
        ("a" * 256, ["a" * 255, "a"]),
        ("b" * 600, ["b" * 255, "b" * 255, "b" * 90]),
    ],
)
def test_txt_values_split_into_255_byte_strings(value: str, parts: list[str]) -> None:
    assert rec.split_txt(value) == parts
    assert "".join(parts) == value


def test_dkim_record_of_a_2048_bit_key_is_one_record_of_several_strings() -> None:
    record = rec.dkim_record("acme.com", "ms2026111", "K" * 392)
    assert record.host == "ms2026111._domainkey.acme.com"
    assert record.value == "v=DKIM1; k=rsa; p=" + "K" * 392
    strings = record.zone_value.split('" "')
    assert len(strings) == 2
    assert record.zone_value.startswith('"v=DKIM1; k=rsa; p=KK') and record.zone_value.endswith('KK"')
    assert all(len(s.strip('"')) <= 255 for s in strings)


@pytest.mark.parametrize(
    ("existing", "expected", "warning"),
    [
        ([], "v=spf1 include:_spf.mailstream.test ~all", None),
        (["v=spf1 mx -all"], "v=spf1 mx include:_spf.mailstream.test -all", None),
        (["v=spf1 include:_spf.google.com ~all"], "v=spf1 include:_spf.google.com include:_spf.mailstream.test ~all", None),
        (["v=spf1 include:_spf.mailstream.test ?all"], "v=spf1 include:_spf.mailstream.test ?all", None),
        (["v=spf1 ip4:192.0.2.1 redirect=_spf.example.com"], "v=spf1 ip4:192.0.2.1 include:_spf.mailstream.test redirect=_spf.example.com", None),
        (["v=spf1 a +all"], "v=spf1 a include:_spf.mailstream.test +all", "lets every server"),
        (["v=spf1 a all"], "v=spf1 a include:_spf.mailstream.test all", "lets every server"),
        (["v=spf1 mx -all", "v=spf1 include:spf.protection.outlook.com ~all"], "v=spf1 include:spf.protection.outlook.com mx include:_spf.mailstream.test ~all", "2 SPF records"),
        (
            ["v=spf1 " + " ".join(f"include:s{i}.example.com" for i in range(10)) + " -all"],
            "v=spf1 " + " ".join(f"include:s{i}.example.com" for i in range(10)) + " include:_spf.mailstream.test -all",
            "11 DNS lookups",
        ),
    ],
)  # fmt: skip
def test_spf_plan_merges_into_one_record(existing: list[str], expected: str, warning: str | None) -> None:
    plan = rec.plan_spf(existing, REQUIRED)
    assert plan.value == expected
    if warning is None:
        assert plan.warnings == ()
    else:
        assert any(warning in w for w in plan.warnings), plan.warnings


def test_spf_plan_with_ip_mechanisms() -> None:
    required = rec.required_spf_mechanisms(None, ["192.0.2.10", "2001:db8::/32"])
    assert required == ["ip4:192.0.2.10", "ip6:2001:db8::/32"]
    assert rec.plan_spf([], required).value == "v=spf1 ip4:192.0.2.10 ip6:2001:db8::/32 ~all"


@pytest.mark.parametrize(
    ("text", "direct", "nested"),
    [
        ("v=spf1 -all", 0, []),
        ("v=spf1 ip4:1.2.3.4 ip6:::1 -all", 0, []),
        ("v=spf1 a mx ptr exists:%{i}.x.test -all", 4, []),
        ("v=spf1 include:_spf.a.test ~include:b.test redirect=c.test", 3, ["_spf.a.test", "b.test", "c.test"]),
        ("v=spf1 a:mail.acme.test mx/24 -all", 2, []),
    ],
)
def test_spf_lookup_terms(text: str, direct: int, nested: list[str]) -> None:
    assert rec.spf_lookup_targets(rec.parse_spf(text)) == (direct, nested)


@pytest.mark.parametrize(
    ("text", "domain", "record_domain", "valid", "policy", "expected"),
    [
        ("v=DMARC1; p=none; rua=mailto:r@acme.com", "acme.com", "acme.com", True, "none", "monitoring only"),
        ("v=DMARC1; p=reject", "acme.com", "acme.com", True, "reject", "no rua= report address"),
        ("v=DMARC1; p=quarantine; adkim=s", "acme.com", "acme.com", True, "quarantine", "strict DKIM alignment"),
        ("v=DMARC1; p=reject; sp=none", "mails.acme.com", "acme.com", True, "none", "policy of acme.com applies"),
        ("v=DMARC1; p=reject; pct=20", "acme.com", "acme.com", True, "reject", "pct=20"),
        ("v=DMARC1; p=none", "acme.com", "acme.com", True, "none", "SPF does not align"),
        ("v=DMARC1; rua=mailto:r@acme.com", "acme.com", "acme.com", False, None, "no p= policy"),
        ("v=DMARC1; p=block", "acme.com", "acme.com", False, None, "p=block is not a policy"),
        ("p=none; v=DMARC1", "acme.com", "acme.com", False, None, "must start with v=DMARC1"),
    ],
)  # fmt: skip
def test_dmarc_evaluation(
    text: str, domain: str, record_domain: str, valid: bool, policy: str | None, expected: str
) -> None:
    evaluation = rec.evaluate_dmarc(text, domain=domain, record_domain=record_domain, bounce_domain="b.mailstream.test")
    assert evaluation.valid is valid
    assert evaluation.policy == policy
    assert any(expected in line for line in (*evaluation.notes, *evaluation.errors)), evaluation


def test_recommended_dmarc_starts_in_monitoring_mode_with_reports() -> None:
    assert rec.recommended_dmarc("dmarc@mailstream.test") == "v=DMARC1; p=none; rua=mailto:dmarc@mailstream.test"
