"""What an erasure takes from inbox and what a conversation keeps (`mailstream_inbox.data_erasure`, pure)."""

from datetime import UTC, datetime, timedelta

import pytest

from mailstream_inbox import data_erasure as plan

ANN = "ann@example.org"
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def message(mid: str, sender: str, *, minutes: int, direction: str = "inbound", to=(), cc=(), **extra) -> dict:
    return {
        "_id": mid,
        "direction": direction,
        "from": {"name": "", "address": sender},
        "to": [{"name": "", "address": a} for a in to],
        "cc": [{"name": "", "address": a} for a in cc],
        "subject": extra.pop("subject", "Order"),
        "text": extra.pop("text", "hello"),
        "created_at": T0 + timedelta(minutes=minutes),
        **extra,
    }


def conversation(**fields) -> dict:
    return {
        "_id": "c1",
        "subject": "Order",
        "normalized_subject": "order",
        "customer": {"name": "Ann", "address": "Ann@Example.org"},
        "customer_key": ANN,
        "participants": [ANN, "bob@example.net"],
        "terms": ["order", ANN, "ann", "bob@example.net"],
        "message_ids": ["m1", "m2", "m3"],
        "message_count": 3,
        **fields,
    }


@pytest.mark.parametrize(
    ("doc", "named"),
    [
        (message("m", "ANN@example.org", minutes=0), True),
        (message("m", "support@shop.test", minutes=0, direction="outbound", to=[ANN]), True),
        (message("m", "bob@example.net", minutes=0, cc=[ANN]), True),
        ({**message("m", "bob@example.net", minutes=0), "bcc": [{"address": ANN}]}, True),
        ({**message("m", "fwd@example.net", minutes=0), "forwarded": {"by": "x@y.z", "original_from": ANN}}, True),
        (message("m", "bob@example.net", minutes=0, to=["support@shop.test"], text=f"ask {ANN}"), False),
        (message("m", "anna@example.org", minutes=0), False),
    ],
)
def test_a_message_names_the_address_by_its_parties_not_its_text(doc: dict, named: bool):
    assert plan.names_address(doc, ANN) is named


def test_a_conversation_with_only_the_persons_messages_goes_entirely():
    messages = [
        message("m1", ANN, minutes=0),
        message("m2", "support@shop.test", minutes=1, direction="outbound", to=[ANN]),
    ]
    decided = plan.plan_conversation(conversation(), messages, ANN)
    assert decided is not None and decided.delete_conversation
    assert decided.erase_message_ids == ["m1", "m2"]


def test_a_conversation_where_someone_else_remains_keeps_only_what_their_messages_justify():
    messages = [
        message("m1", ANN, minutes=0, subject=f"Order for {ANN}"),
        message("m2", "bob@example.net", minutes=5, to=["support@shop.test"], text="Bob's own words"),
        message("m3", "support@shop.test", minutes=9, direction="outbound", to=[ANN, "bob@example.net"]),
    ]
    messages[1]["from"]["name"] = "Bob B"
    decided = plan.plan_conversation(conversation(subject=f"Order for {ANN}"), messages, ANN)
    assert decided is not None and not decided.delete_conversation
    assert decided.erase_message_ids == ["m1", "m3"]
    kept = decided.update
    assert kept["message_ids"] == ["m2"] and kept["message_count"] == 1
    assert kept["customer"] == {"name": "Bob B", "address": "bob@example.net"}
    assert kept["customer_key"] == "bob@example.net"
    assert kept["participants"] == ["bob@example.net"]
    assert kept["subject"] == "Order for [erased]"
    assert kept["last_message_at"] == T0 + timedelta(minutes=5)
    assert kept["last_inbound_message_id"] == "m2"
    assert "bob's" in kept["terms"] or "bob" in kept["terms"]
    assert not [t for t in kept["terms"] if "ann" in t]


def test_when_no_inbound_message_remains_the_conversation_has_no_customer():
    messages = [
        message("m1", ANN, minutes=0),
        message("m2", "agent@shop.test", minutes=1, direction="outbound", to=["bob@example.net"]),
    ]
    kept = plan.plan_conversation(conversation(), messages, ANN).update
    assert kept["customer"] == {"name": "", "address": ""}
    assert kept["last_inbound_message_id"] is None and kept["message_ids"] == ["m2"]


def test_a_retention_erasure_takes_the_whole_conversation_unless_a_message_came_since():
    messages = [message("m1", "bob@example.net", minutes=0)]
    old = conversation(last_message_at=T0)
    whole = plan.plan_conversation(old, messages, None, older_than=T0 + timedelta(days=1))
    assert whole is not None and whole.delete_conversation and whole.erase_message_ids == ["m1"]
    assert plan.plan_conversation(old, messages, None, older_than=T0) is None


def test_blobs_of_messages_are_their_raw_mail_and_attachments():
    docs = [
        {"raw_blob_id": "r1", "attachments": [{"sha256": "a1"}, {"sha256": "a2"}]},
        {"raw_blob_id": "r2"},
        {"attachments": []},
    ]
    assert plan.blob_ids(docs) == {"r1", "r2", "a1", "a2"}


def test_mentions_looks_through_nested_values_case_insensitively():
    assert plan.mentions({"data": {"from": {"address": "Ann@Example.org"}}}, [ANN])
    assert plan.mentions({"ids": ["m1"]}, ["m1"])
    assert not plan.mentions({"data": "nothing"}, [ANN, ""])
