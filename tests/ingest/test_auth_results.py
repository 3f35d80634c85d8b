"""Authentication results from what the lookups found: alignment, DMARC records and policy, the RFC 8601 header."""

import authres
import pytest

from mailstream_ingest.auth_results import (
    Checks,
    DkimOutcome,
    aligned,
    evaluate_dmarc,
    format_header,
    organizational_domain,
    parse_dmarc_record,
    summarise,
)


@pytest.mark.parametrize(
    ("a", "b", "mode", "expected"),
    [
        ("mail.acme.example", "acme.example", "r", True),
        ("mail.acme.example", "acme.example", "s", False),
        ("shop.acme.co.jp", "acme.co.jp", "r", True),
        ("other.co.jp", "acme.co.jp", "r", False),
        ("alice.github.io", "bob.github.io", "r", False),
        ("acme.example", "evil.example", "r", False),
    ],
)
def test_alignment(a, b, mode, expected):
    assert aligned(a, b, mode) is expected


def test_organizational_domain_and_dmarc_record():
    assert organizational_domain("a.b.acme.co.jp") == "acme.co.jp"
    assert organizational_domain("shop.acme.co.uk") == "acme.co.uk"
    assert organizational_domain("alice.github.io") == "alice.github.io"  # a private suffix: not bob's org
    assert organizational_domain("Mail.Acme.Example.") == "acme.example"
    assert parse_dmarc_record("v=DMARC1; p=quarantine; rua=mailto:x@y") == {
        "v": "DMARC1",
        "p": "quarantine",
        "rua": "mailto:x@y",
    }
    assert parse_dmarc_record("v=spf1 -all") is None


def test_header_lists_every_signature():
    checks = Checks(
        spf="softfail", dkim=[DkimOutcome("fail", "a.example", "s1"), DkimOutcome("pass", "b.example", "s2")]
    )
    header = format_header("in.test", checks, "x@a.example", "a.example")
    assert (
        header
        == "in.test; spf=softfail smtp.mailfrom=x@a.example; dkim=fail header.d=a.example header.s=s1; dkim=pass header.d=b.example header.s=s2; dmarc=none header.from=a.example"
    )


@pytest.mark.parametrize("mail_from", ["x@a.example", "first.last+tag@a.example", '"john doe"@a.example', ""])
def test_header_is_valid_rfc8601(mail_from):
    checks = Checks(
        spf="pass",
        spf_domain="a.example",
        dkim=[DkimOutcome("pass", "a.example", "s1")],
        dmarc="pass",
        dmarc_policy="reject",
    )
    parsed = authres.AuthenticationResultsHeader.parse_value(format_header("in.test", checks, mail_from, "a.example"))
    assert parsed.authserv_id == "in.test"
    assert [(r.method, r.result) for r in parsed.results] == [("spf", "pass"), ("dkim", "pass"), ("dmarc", "pass")]
    if mail_from:
        assert parsed.results[0].properties[0].value == mail_from


RELAXED = {"v": "DMARC1", "p": "reject"}
STRICT = {"v": "DMARC1", "p": "quarantine", "aspf": "s", "adkim": "s"}


@pytest.mark.parametrize(
    ("record", "checks", "expected"),
    [
        (None, Checks(spf="pass", spf_domain="acme.example"), ("none", None)),
        (RELAXED, Checks(spf="pass", spf_domain="acme.example"), ("pass", "reject")),
        (RELAXED, Checks(spf="pass", spf_domain="mail.acme.example"), ("pass", "reject")),
        (STRICT, Checks(spf="pass", spf_domain="mail.acme.example"), ("fail", "quarantine")),
        (RELAXED, Checks(spf="pass", spf_domain="other.example"), ("fail", "reject")),
        (RELAXED, Checks(dkim=[DkimOutcome("pass", "acme.example", "s1")]), ("pass", "reject")),
        (STRICT, Checks(dkim=[DkimOutcome("pass", "mail.acme.example", "s1")]), ("fail", "quarantine")),
        (RELAXED, Checks(dkim=[DkimOutcome("fail", "acme.example", "s1")]), ("fail", "reject")),
        (RELAXED, Checks(spf="temperror"), ("temperror", "reject")),
        (RELAXED, Checks(dkim=[DkimOutcome("temperror")]), ("temperror", "reject")),
        ({"v": "DMARC1"}, Checks(), ("fail", "none")),
    ],
)
def test_evaluate_dmarc(record, checks, expected):
    assert evaluate_dmarc(record, "acme.example", checks) == expected


@pytest.mark.parametrize(
    ("dkim", "expected"),
    [
        ([], "none"),
        ([DkimOutcome("fail"), DkimOutcome("pass")], "pass"),
        ([DkimOutcome("permerror"), DkimOutcome("temperror")], "temperror"),
        ([DkimOutcome("policy")], "policy"),
    ],
)
def test_summary_keeps_the_best_dkim_result(dkim, expected):
    result = summarise(Checks(spf="pass", dkim=dkim, dmarc="fail"), "header")
    assert (result.spf, result.dkim, result.dmarc, result.header) == ("pass", expected, "fail", "header")
