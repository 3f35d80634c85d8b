"""The run record: its `_id` derives from its unique key (rule, message), it carries the decision and its reasons,
and it needs publishing only while a fired run with actions is not confirmed."""

from datetime import UTC, datetime, timedelta

import pytest

from mailstream_automation.evaluation import evaluate_rule
from mailstream_automation.facts import facts_from_message
from mailstream_automation.rules import StoredRule
from mailstream_automation.runs import build_run, needs_publishing, run_id_for
from tests.automation.support import stored_message

AT = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
TAG = {"type": "add_tags", "tags": ["t"]}


def test_the_run_id_is_the_same_for_the_same_rule_and_message_only():
    assert run_id_for("rule-1", "message-1") == run_id_for("rule-1", "message-1")
    assert len({run_id_for("rule-1", "message-1"), run_id_for("rule-2", "message-1"), run_id_for("rule-1", "m-2")}) == 3
    assert len(run_id_for("rule-1", "message-1")) == 32


def stored_rule(subject: str) -> StoredRule:
    return StoredRule.model_validate(
        {
            "id": "rule-1",
            "account_id": "acc",
            "position": 0,
            "created_at": AT,
            "updated_at": AT,
            "name": "Tag refunds",
            "conditions": [{"field": "subject", "operator": "contains", "value": subject}],
            "actions": [TAG],
        }
    )


@pytest.mark.parametrize(("subject", "fired"), [("refund", True), ("invoice", False)])
def test_build_run(subject, fired):
    event = stored_message("acc")
    rule = stored_rule(subject)
    outcome = evaluate_rule(rule, facts_from_message(event))
    skipped = [{"type": "auto_reply", "reason": "precedence: bulk"}]
    run = build_run(
        event=event,
        rule=rule,
        outcome=outcome,
        actions=list(rule.actions),
        skipped_actions=skipped,
        customer="kana@example.net",
        at=AT,
        retention=timedelta(days=30),
    )
    assert run["_id"] == run_id_for("rule-1", event.message_id)
    assert (run["rule_id"], run["rule_name"], run["account_id"]) == ("rule-1", "Tag refunds", "acc")
    assert (run["message_id"], run["conversation_id"]) == (event.message_id, event.conversation_id)
    assert run["fired"] is fired and run["matched_conditions"][0]["matched"] is fired
    assert run["actions"] == ([TAG] if fired else [])
    assert run["skipped_actions"] == (skipped if fired else [])
    assert run["published"] is False and run["expires_at"] == AT + timedelta(days=30)


@pytest.mark.parametrize(
    ("run", "expected"),
    [
        ({"fired": True, "actions": [TAG], "published": False}, True),
        ({"fired": True, "actions": [TAG]}, True),
        ({"fired": True, "actions": [TAG], "published": True}, False),
        ({"fired": True, "actions": [], "published": False}, False),
        ({"fired": False, "actions": [], "published": False}, False),
        ({}, False),
    ],
)
def test_needs_publishing(run, expected):
    assert needs_publishing(run) is expected
