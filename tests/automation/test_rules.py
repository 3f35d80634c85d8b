"""What a rule may say: each mistake is refused with the location of the offending part."""

import pytest
from pydantic import ValidationError

from mailstream_automation.rules import RuleDefinition

TAG = {"type": "add_tags", "tags": ["vip"]}


def rule(**overrides):
    return {"name": "r", "conditions": [], "actions": [TAG]} | overrides


def errors_of(data) -> list[tuple[tuple, str]]:
    with pytest.raises(ValidationError) as caught:
        RuleDefinition.model_validate(data)
    return [(e["loc"], e["msg"]) for e in caught.value.errors()]


@pytest.mark.parametrize(
    ("condition", "loc", "message"),
    [
        ({"field": "sender", "operator": "equals", "value": "x"}, "field", "unknown field 'sender'"),
        ({"field": "header:", "operator": "equals", "value": "x"}, "field", "header:<Name>"),
        ({"field": "header:Bad Name", "operator": "equals", "value": "x"}, "field", "header:<Name>"),
        ({"field": "header:Bad:Name", "operator": "equals", "value": "x"}, "field", "header:<Name>"),
        ({"field": "subject", "operator": "like", "value": "x"}, "operator", "does not apply"),
        ({"field": "subject", "operator": "is", "value": True}, "operator", "does not apply"),
        ({"field": "has_attachment", "operator": "equals", "value": True}, "operator", "use is"),
        ({"field": "received_at", "operator": "equals", "value": "x"}, "operator", "within_hours"),
        ({"field": "subject", "operator": "matches", "value": "(unclosed"}, "value", "invalid regular expression"),
        ({"field": "subject", "operator": "matches", "value": "a" * 501}, "value", "longer than 500"),
        ({"field": "subject", "operator": "contains", "value": ""}, "value", "must not be empty"),
        ({"field": "subject", "operator": "contains", "value": 3}, "value", "string"),
        ({"field": "subject", "operator": "contains", "value": []}, "value", "list of 1 to"),
        ({"field": "subject", "operator": "contains", "value": ["a", 1]}, "value", "string"),
        ({"field": "subject", "operator": "equals", "value": "x" * 1001}, "value", "longer than 1000"),
        ({"field": "has_attachment", "operator": "is", "value": "yes"}, "value", "true or false"),
        (
            {"field": "received_at", "operator": "within_hours", "value": {"timezone": "Mars/Olympus"}},
            "value",
            "unknown time zone",
        ),
        ({"field": "received_at", "operator": "within_hours", "value": "9-5"}, "value", "business hours"),
    ],
)
def test_bad_condition_names_its_part(condition, loc, message):
    found = errors_of(rule(conditions=[{"field": "subject", "operator": "contains", "value": "ok"}, condition]))
    assert len(found) == 1, found
    where, text = found[0]
    assert where == ("conditions", 1, loc)
    assert message in text


def test_unknown_condition_key_is_refused():
    found = errors_of(rule(conditions=[{"field": "subject", "operator": "contains", "value": "x", "regex": True}]))
    assert found[0][0] == ("conditions", 0, "regex")


@pytest.mark.parametrize(
    ("actions", "loc", "message"),
    [
        ([], ("actions",), "at least 1 item"),
        ([{"type": "add_tags"}], ("actions", 0, "add_tags", "tags"), "Field required"),
        ([{"type": "add_tags", "tags": []}], ("actions", 0, "add_tags", "tags"), "at least 1 item"),
        ([{"type": "add_tags", "tags": [" "]}], ("actions",), "actions[0].tags"),
        ([{"type": "explode"}], ("actions", 0), "does not match any of the expected tags"),
        ([{"type": "set_status", "status": "done"}], ("actions", 0, "set_status", "status"), "open"),
        ([{"type": "set_priority", "priority": "asap"}], ("actions", 0, "set_priority", "priority"), "urgent"),
        ([{"type": "auto_reply"}], ("actions", 0, "auto_reply", "canned_response_id"), "Field required"),
        (
            [{"type": "auto_reply", "canned_response_id": "a"}, {"type": "auto_reply", "canned_response_id": "b"}],
            ("actions",),
            "at most one auto_reply",
        ),
    ],
)
def test_bad_action_names_its_part(actions, loc, message):
    found = errors_of(rule(actions=actions))
    assert found[0][0] == loc, found
    assert message in found[0][1]


@pytest.mark.parametrize(
    ("overrides", "loc"),
    [
        ({"name": " "}, ("name",)),
        ({"name": ""}, ("name",)),
        ({"match": "some"}, ("match",)),
        ({"colour": "red"}, ("colour",)),
        ({"stop_processing": "maybe"}, ("stop_processing",)),
    ],
)
def test_bad_rule_field_is_named(overrides, loc):
    assert errors_of(rule(**overrides))[0][0] == loc


def test_a_valid_rule_round_trips_through_its_document():
    data = rule(
        conditions=[
            {"field": "header:X-Priority", "operator": "starts_with", "value": "1"},
            {
                "field": "received_at",
                "operator": "outside_hours",
                "value": {"timezone": "Asia/Tokyo", "days": ["mon"], "from": "09:00", "to": "18:00"},
            },
        ],
        actions=[TAG, {"type": "auto_reply", "canned_response_id": "c1"}, {"type": "assign", "assignee": None}],
        stream_ids=["s1", "s1", "s2"],
    )
    definition = RuleDefinition.model_validate(data)
    document = definition.to_document()
    assert document["stream_ids"] == ["s1", "s2"]
    assert document["conditions"][1]["value"]["from"] == "09:00"
    assert document["actions"][1] == {"type": "auto_reply", "canned_response_id": "c1", "apply_template": True}
    assert RuleDefinition.model_validate({**document}).to_document() == document
