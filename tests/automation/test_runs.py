"""A run's `_id` is derived from its unique key (rule, message), so finding it is a bare `_id` read."""

from mailstream_automation.runs import run_id_for


def test_the_run_id_is_the_same_for_the_same_rule_and_message_only():
    assert run_id_for("rule-1", "message-1") == run_id_for("rule-1", "message-1")
    assert len({run_id_for("rule-1", "message-1"), run_id_for("rule-2", "message-1"), run_id_for("rule-1", "m-2")}) == 3
    assert len(run_id_for("rule-1", "message-1")) == 32
