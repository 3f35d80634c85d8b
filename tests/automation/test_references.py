"""What a rule refers to in inbox's catalogue and which references are not the account's own (pure: the live
entities are given)."""

import pytest

from mailstream_automation.references import (
    is_live,
    reference_errors,
    reference_id,
    reference_of,
    referenced_ids,
)
from mailstream_automation.rules import RuleDefinition
from mailstream_common.contracts import CannedResponseChanged, StreamChanged, TopicChanged

TAG = {"type": "add_tags", "tags": ["t"]}


def rule(topic_id=None, stream_ids=(), canned=()) -> RuleDefinition:
    actions = [{"type": "auto_reply", "canned_response_id": c} for c in canned] + [TAG]
    return RuleDefinition.model_validate(
        {"name": "r", "conditions": [], "actions": actions, "topic_id": topic_id, "stream_ids": list(stream_ids)}
    )


LIVE = {
    "topic:t1": {"kind": "topic", "account_id": "acc"},
    "stream:s1": {"kind": "stream", "account_id": "acc", "topic_id": "t1"},
    "stream:s2": {"kind": "stream", "account_id": "acc", "topic_id": "t2"},
    "canned_response:c1": {"kind": "canned_response", "account_id": "acc"},
}


@pytest.mark.parametrize(
    ("definition", "errors"),
    [
        (rule(), []),
        (rule("t1", ["s1"], ["c1"]), []),
        (rule(None, ["s2"]), []),
        (rule("t9"), [(["body", "topic_id"], "unknown topic")]),
        (rule(None, ["s1", "s9"]), [(["body", "stream_ids", 1], "unknown stream")]),
        (rule("t1", ["s2"]), [(["body", "stream_ids", 0], "stream is not in the rule's topic")]),
        (rule(None, (), ["c9"]), [(["body", "actions", 0, "canned_response_id"], "unknown canned response")]),
        (
            rule("t9", ["s9"], ["c9"]),
            [
                (["body", "topic_id"], "unknown topic"),
                (["body", "stream_ids", 0], "unknown stream"),
                (["body", "actions", 0, "canned_response_id"], "unknown canned response"),
            ],
        ),
    ],
)
def test_reference_errors(definition, errors):
    assert reference_errors(definition, LIVE) == errors


def test_referenced_ids_are_every_projection_id_the_rule_names():
    assert referenced_ids(rule("t1", ["s1", "s2"], ["c1"])) == [
        "topic:t1",
        "stream:s1",
        "stream:s2",
        "canned_response:c1",
    ]
    assert referenced_ids(rule()) == []


@pytest.mark.parametrize(
    ("document", "live"),
    [
        ({"account_id": "acc", "deleted": False}, True),
        ({"account_id": "acc"}, True),
        ({"account_id": "acc", "deleted": True}, False),
        ({"account_id": "other", "deleted": False}, False),
        (None, False),
    ],
)
def test_is_live(document, live):
    assert is_live(document, "acc") is live


def test_reference_of_each_catalogue_event():
    topic = TopicChanged(change="created", version=1, account_id="acc", topic_id="t1", name="t", deleted=False)
    stream = StreamChanged(
        change="updated", version=2, account_id="acc", topic_id="t1", stream_id="s1", address="s@acme.test",
        forwarding_address="s1@in.test", allow_agent_send=True, deleted=False,
    )  # fmt: skip
    canned = CannedResponseChanged(
        change="deleted", version=3, account_id="acc", canned_response_id="c1", topic_id=None, deleted=True
    )
    assert reference_of(topic) == (
        reference_id("topic", "t1"),
        {"kind": "topic", "account_id": "acc", "topic_id": None, "deleted": False},
    )
    assert reference_of(stream) == (
        "stream:s1",
        {"kind": "stream", "account_id": "acc", "topic_id": "t1", "deleted": False},
    )
    assert reference_of(canned) == (
        "canned_response:c1",
        {"kind": "canned_response", "account_id": "acc", "topic_id": None, "deleted": True},
    )
