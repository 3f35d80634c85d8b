"""Rules over facts: all/any, no conditions, scope, order by position, stop_processing."""

from datetime import UTC, datetime, timedelta

import pytest

from mailstream_automation.evaluation import evaluate_rule, evaluate_rules, rule_applies
from mailstream_automation.facts import build_facts
from mailstream_automation.rules import RuleDefinition, StoredRule

FACTS = build_facts(from_address="kana@example.net", subject="Refund please", body="order 1234")
SUBJECT_REFUND = {"field": "subject", "operator": "contains", "value": "refund"}
SUBJECT_INVOICE = {"field": "subject", "operator": "contains", "value": "invoice"}
BODY_ORDER = {"field": "body", "operator": "matches", "value": r"order \d+"}
TAG = {"type": "add_tags", "tags": ["t"]}
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def definition(match="all", conditions=(), **extra) -> RuleDefinition:
    return RuleDefinition.model_validate(
        {"name": "r", "match": match, "conditions": list(conditions), "actions": [TAG]} | extra
    )


def stored(rule_id: str, position: int, conditions=(SUBJECT_REFUND,), *, seconds: int = 0, **extra) -> StoredRule:
    return StoredRule.model_validate(
        {
            "id": rule_id,
            "account_id": "acc",
            "position": position,
            "created_at": T0 + timedelta(seconds=seconds),
            "updated_at": T0,
            "name": rule_id,
            "conditions": list(conditions),
            "actions": [TAG],
        }
        | extra
    )


@pytest.mark.parametrize(
    ("match", "conditions", "fired"),
    [
        ("all", [SUBJECT_REFUND, BODY_ORDER], True),
        ("all", [SUBJECT_REFUND, SUBJECT_INVOICE], False),
        ("all", [SUBJECT_INVOICE], False),
        ("any", [SUBJECT_INVOICE, BODY_ORDER], True),
        ("any", [SUBJECT_INVOICE], False),
        ("any", [SUBJECT_REFUND, BODY_ORDER], True),
        ("all", [], True),
        ("any", [], True),
    ],
)
def test_all_and_any(match, conditions, fired):
    outcome = evaluate_rule(definition(match, conditions), FACTS)
    assert outcome.fired is fired
    assert len(outcome.conditions) == len(conditions)  # every condition is judged, for the run's "why"


def test_outcome_records_each_condition():
    outcome = evaluate_rule(definition("any", [SUBJECT_INVOICE, SUBJECT_REFUND]), FACTS)
    records = outcome.matched_conditions()
    assert [r["matched"] for r in records] == [False, True]
    assert [r["index"] for r in records] == [0, 1]
    assert records[1]["why"] == 'subject "Refund please" contains "refund"'


@pytest.mark.parametrize(
    ("scope", "applies"),
    [
        ({}, True),
        ({"topic_id": "t1"}, True),
        ({"topic_id": "t2"}, False),
        ({"stream_ids": ["s1", "s9"]}, True),
        ({"stream_ids": ["s9"]}, False),
        ({"topic_id": "t1", "stream_ids": ["s1"]}, True),
        ({"enabled": False}, False),
    ],
)
def test_scope(scope, applies):
    assert rule_applies(definition(**scope), topic_id="t1", stream_id="s1") is applies


def test_rules_run_in_position_order_and_all_fire_without_stop_processing():
    rules = [stored("c", 2), stored("a", 0), stored("b", 1, [SUBJECT_INVOICE])]
    outcomes = evaluate_rules(rules, FACTS, topic_id="t1", stream_id="s1")
    assert [(r.id, o.fired) for r, o in outcomes] == [("a", True), ("b", False), ("c", True)]


def test_stop_processing_ends_evaluation_only_when_the_rule_fires():
    rules = [
        stored("a", 0, [SUBJECT_INVOICE], stop_processing=True),  # does not fire: evaluation goes on
        stored("b", 1, stop_processing=True),  # fires and stops
        stored("c", 2),
    ]
    outcomes = evaluate_rules(rules, FACTS, topic_id="t1", stream_id="s1")
    assert [(r.id, o.fired) for r, o in outcomes] == [("a", False), ("b", True)]


def test_disabled_and_out_of_scope_rules_are_not_evaluated():
    rules = [
        stored("a", 0, enabled=False),
        stored("b", 1, topic_id="other"),
        stored("c", 2, stream_ids=["other"]),
        stored("d", 3, stream_ids=["s1"]),
    ]
    outcomes = evaluate_rules(rules, FACTS, topic_id="t1", stream_id="s1")
    assert [r.id for r, _ in outcomes] == ["d"]


def test_equal_positions_fall_back_to_creation_order():
    rules = [stored("z", 0, seconds=1), stored("y", 0, seconds=2), stored("x", 0, seconds=0)]
    outcomes = evaluate_rules(rules, FACTS, topic_id="t1", stream_id="s1")
    assert [r.id for r, _ in outcomes] == ["x", "z", "y"]
