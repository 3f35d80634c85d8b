"""Evaluate an account's rules against one message's facts: in order, first-match controlled by stop_processing."""

from collections.abc import Sequence
from dataclasses import dataclass

from .conditions import ConditionResult, evaluate_condition
from .facts import Facts
from .rules import RuleDefinition, StoredRule


@dataclass(frozen=True)
class RuleOutcome:
    fired: bool
    conditions: tuple[ConditionResult, ...]

    def matched_conditions(self) -> list[dict]:
        """Every condition with its verdict and reason (the 'why' of a run), not only the ones that held."""
        return [c.as_record() for c in self.conditions]


def evaluate_rule(rule: RuleDefinition, facts: Facts, *, regex_timeout: float = 0.05) -> RuleOutcome:
    """Every condition is evaluated (no short-circuit) so that a run can say why it did or did not fire."""
    results = tuple(
        evaluate_condition(condition, facts, index, regex_timeout=regex_timeout)
        for index, condition in enumerate(rule.conditions)
    )
    if not results:
        fired = True
    elif rule.match == "all":
        fired = all(r.matched for r in results)
    else:
        fired = any(r.matched for r in results)
    return RuleOutcome(fired, results)


def rule_applies(rule: RuleDefinition, *, topic_id: str, stream_id: str) -> bool:
    """Enabled, and the message is in the rule's topic and streams (when it names any)."""
    if not rule.enabled:
        return False
    if rule.topic_id is not None and rule.topic_id != topic_id:
        return False
    return not rule.stream_ids or stream_id in rule.stream_ids


def evaluation_order(rules: Sequence[StoredRule]) -> list[StoredRule]:
    return sorted(rules, key=lambda r: (r.position, r.created_at, r.id))


def evaluate_rules(
    rules: Sequence[StoredRule], facts: Facts, *, topic_id: str, stream_id: str, regex_timeout: float = 0.05
) -> list[tuple[StoredRule, RuleOutcome]]:
    """The rules that apply, in order, each with its outcome; evaluation stops after a fired stop_processing rule."""
    outcomes: list[tuple[StoredRule, RuleOutcome]] = []
    for rule in evaluation_order(rules):
        if not rule_applies(rule, topic_id=topic_id, stream_id=stream_id):
            continue
        outcome = evaluate_rule(rule, facts, regex_timeout=regex_timeout)
        outcomes.append((rule, outcome))
        if outcome.fired and rule.stop_processing:
            break
    return outcomes
