"""Every field × operator of a condition, evaluated against plain facts (table-driven)."""

from datetime import UTC, datetime

import pytest

from mailstream_automation.conditions import OPERATORS, Condition, Kind, evaluate_condition
from mailstream_automation.facts import build_facts

FACTS = build_facts(
    from_address="Kana@Example.NET",
    from_name="Kana Customer",
    to=["support@acme.com", "Sales@Acme.com"],
    cc=["boss@example.net"],
    subject="Refund for order 12345",
    body="Hello,\nI would like a REFUND for order #12345.\nThanks",
    headers=[("X-Priority", "1 (Highest)"), ("Received", "from a"), ("received", "from b"), ("X-Empty", "")],
    has_attachment=True,
    is_first_message=False,
    authentication={"spf": "pass", "dkim": "fail", "dmarc": "Fail"},
    received_at=datetime(2026, 3, 2, 1, 30, tzinfo=UTC),
)

CASES = [
    # field, operator, value, expected
    ("from", "equals", "kana@example.net", True),
    ("from", "equals", "KANA@EXAMPLE.NET", True),
    ("from", "equals", "other@example.net", False),
    ("from", "not_equals", "other@example.net", True),
    ("from", "not_equals", "kana@example.net", False),
    ("from", "contains", "@example", True),
    ("from", "not_contains", "@example", False),
    ("from", "starts_with", "kana@", True),
    ("from", "ends_with", "example.net", True),
    ("from", "ends_with", "example.com", False),
    ("from", "matches", r"^[a-z]+@example\.(net|org)$", True),
    ("from", "equals", ["x@y.z", "kana@example.net"], True),
    ("from_name", "contains", "customer", True),
    ("from_domain", "equals", "example.net", True),
    ("from_domain", "equals", "acme.com", False),
    ("from_domain", "not_equals", "acme.com", True),
    ("from_domain", "ends_with", ".net", True),
    ("from_domain", "equals", ["acme.com", "example.net"], True),
    ("from_domain", "not_equals", ["acme.com", "example.net"], False),
    ("to", "equals", "sales@acme.com", True),
    ("to", "equals", "billing@acme.com", False),
    ("to", "not_equals", "billing@acme.com", True),
    ("to", "not_equals", "sales@acme.com", False),
    ("to", "contains", "support", True),
    ("to", "not_contains", "billing", True),
    ("to", "starts_with", "sales", True),
    ("to", "ends_with", "@acme.com", True),
    ("to", "matches", r"^(support|help)@", True),
    ("cc", "equals", "boss@example.net", True),
    ("cc", "contains", "acme", False),
    ("cc", "not_contains", "acme", True),
    ("subject", "equals", "refund for order 12345", True),
    ("subject", "equals", "Refund", False),
    ("subject", "not_equals", "Refund", True),
    ("subject", "contains", "REFUND", True),
    ("subject", "not_contains", "invoice", True),
    ("subject", "not_contains", "order", False),
    ("subject", "starts_with", "refund", True),
    ("subject", "starts_with", "order", False),
    ("subject", "ends_with", "12345", True),
    ("subject", "matches", r"order \d{5}$", True),
    ("subject", "matches", r"(?-i)^refund", False),
    ("subject", "contains", ["invoice", "refund"], True),
    ("subject", "not_contains", ["invoice", "refund"], False),
    ("body", "contains", "refund for order", True),
    ("body", "matches", r"#\d{4,}", True),
    ("body", "matches", r"^I would", False),
    ("body", "matches", r"(?m)^I would", True),
    ("body", "starts_with", "hello", True),
    ("body", "ends_with", "thanks", True),
    ("body", "not_contains", "cancel", True),
    ("header:X-Priority", "starts_with", "1", True),
    ("header:x-priority", "equals", "1 (highest)", True),
    ("header:X-Priority", "not_equals", "1 (highest)", False),
    ("header:Received", "equals", "from b", True),
    ("header:Received", "contains", "from", True),
    ("header:Received", "not_contains", "from b", False),
    ("header:X-Missing", "contains", "x", False),
    ("header:X-Missing", "not_contains", "x", True),
    ("header:X-Missing", "not_equals", "x", True),
    ("header:X-Missing", "matches", ".*", False),
    ("header:X-Empty", "equals", "", True),
    ("header:X-Empty", "matches", "^$", True),
    ("has_attachment", "is", True, True),
    ("has_attachment", "is", False, False),
    ("is_first_message", "is", False, True),
    ("is_first_message", "is", True, False),
    ("authentication.dmarc", "equals", "fail", True),
    ("authentication.dmarc", "not_equals", "pass", True),
    ("authentication.spf", "equals", "pass", True),
    ("authentication.dkim", "equals", "pass", False),
    ("authentication.dkim", "starts_with", "fa", True),
    ("from_domain", "contains", "example", True),
    ("from_domain", "not_contains", "example", False),
    ("from_domain", "starts_with", "exa", True),
    ("from_domain", "matches", r"^example\.(net|com)$", True),
    ("cc", "starts_with", "boss@", True),
    ("cc", "ends_with", ".org", False),
    ("cc", "matches", r"^boss@", True),
    ("cc", "not_equals", "boss@example.net", False),
    ("body", "equals", "hello", False),
    ("body", "not_equals", "hello", True),
    ("header:X-Priority", "equals", "1", False),
    ("header:X-Priority", "contains", "highest", True),
    ("header:X-Priority", "not_contains", "low", True),
    ("header:X-Priority", "ends_with", "(HIGHEST)", True),
    ("header:X-Priority", "matches", r"^[12]\b", True),
    ("authentication.dmarc", "contains", "ai", True),
    ("authentication.dmarc", "not_contains", "fail", False),
    ("authentication.dmarc", "starts_with", "pass", False),
    ("authentication.dmarc", "ends_with", "il", True),
    ("authentication.dmarc", "matches", "^(fail|quarantine)$", True),
]


@pytest.mark.parametrize(("field", "operator", "value", "expected"), CASES)
def test_condition_verdict(field, operator, value, expected):
    condition = Condition(field=field, operator=operator, value=value)
    result = evaluate_condition(condition, FACTS, 3)
    assert result.matched is expected, result.why
    assert result.index == 3 and result.field == field and result.operator == operator
    assert result.why


def test_every_operator_is_covered_for_every_kind_of_text_field():
    """Single-valued, multi-valued and header fields each take every text operator in the table above."""
    covered = {(f, o) for f, o, _, _ in CASES}
    for field in ("from", "from_domain", "to", "cc", "subject", "body", "header:X-Priority", "authentication.dmarc"):
        for operator in OPERATORS[Kind.TEXT]:
            assert (field, operator) in covered, (field, operator)
    for field in ("has_attachment", "is_first_message"):
        assert (field, "is") in covered


def test_why_quotes_the_value_that_matched():
    result = evaluate_condition(Condition(field="to", operator="ends_with", value="@acme.com"), FACTS)
    assert result.why == 'to "support@acme.com" ends with "@acme.com"'
    result = evaluate_condition(Condition(field="subject", operator="not_contains", value="order"), FACTS)
    assert result.why == 'subject "Refund for order 12345" contains "order"'
    result = evaluate_condition(Condition(field="cc", operator="not_contains", value="acme"), FACTS)
    assert result.why == 'cc "boss@example.net" does not contain "acme"'
    result = evaluate_condition(Condition(field="header:X-Missing", operator="contains", value="a"), FACTS)
    assert "no such value" in result.why


def test_long_values_are_shortened_in_the_reason():
    facts = build_facts(from_address="a@b.c", subject="x" * 5000)
    result = evaluate_condition(Condition(field="subject", operator="contains", value="x"), facts)
    assert len(result.why) < 200


def test_missing_sender_has_empty_address_and_domain():
    facts = build_facts(from_address=None)
    assert evaluate_condition(Condition(field="from", operator="equals", value=""), facts).matched
    assert evaluate_condition(Condition(field="from_domain", operator="equals", value=""), facts).matched


def test_a_pattern_that_runs_out_of_time_is_false_with_the_reason():
    facts = build_facts(from_address="a@b.c", body="a" * 30 + "!")
    # Nested quantifiers over alternatives: exponential for a backtracking engine.
    condition = Condition(field="body", operator="matches", value=r"^(\w|\w\w|a|aa)*(\w|a)*$")
    result = evaluate_condition(condition, facts, regex_timeout=0.01)
    assert result.matched is False
    assert result.error == "regex_timeout"
    assert "took longer than" in result.why
