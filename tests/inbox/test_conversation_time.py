"""The pure rules of merges, moves, snoozes and scheduled replies (`conversation_time`)."""

from datetime import UTC, datetime, timedelta

import pytest

from mailstream_inbox import conversation_time as rules

NOW = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)


def conv(cid: str, *, account: str = "a1", stream: str = "s1", merged_into: str | None = None) -> dict:
    return {"_id": cid, "account_id": account, "stream_id": stream, "merged_into": merged_into}


@pytest.mark.parametrize(
    ("target", "status"),
    [
        (None, 404),
        (conv("t", account="a2"), 404),  # another account's id is not found, like a missing one
        (conv("t", stream="s2"), 409),
        (conv("s"), 409),  # into itself
        (conv("t", merged_into="u"), 409),  # merge into the end of the chain instead
        (conv("t"), None),
    ],
)
def test_merge_needs_a_live_conversation_of_the_same_account_and_stream(target, status):
    refused = rules.merge_refusal(conv("s"), target)
    assert (refused.status if refused else None) == status


def test_a_merged_conversation_merges_again_only_into_the_same_target():
    assert rules.merge_refusal(conv("s", merged_into="t"), conv("t")) is None  # finishing an interrupted merge
    assert rules.merge_refusal(conv("s", merged_into="u"), conv("t")).status == 409


@pytest.mark.parametrize(
    ("target", "status"),
    [
        (None, 404),
        (conv("t", account="a2"), 404),
        (conv("t", stream="s2"), 409),
        (conv("s"), 409),
        (conv("t", merged_into="u"), 409),
        (conv("t"), None),
    ],
)
def test_a_message_moves_only_within_its_account_and_stream(target, status):
    refused = rules.move_refusal(conv("s"), target)
    assert (refused.status if refused else None) == status


def test_a_move_to_where_the_message_came_from_is_moving_back():
    assert rules.move_kind({"previous_conversation_id": "a"}, "a") == "moved_back"
    assert rules.move_kind({"previous_conversation_id": "a"}, "b") == "moved"
    assert rules.move_kind({}, "b") == "moved"


def test_unmerge_takes_back_only_what_the_merge_brought():
    messages = [
        {"_id": "m1", "previous_conversation_id": "merged"},
        {"_id": "m2"},  # the target's own
        {"_id": "m3", "previous_conversation_id": "elsewhere"},
        {"_id": "m4", "previous_conversation_id": "merged"},
    ]
    assert rules.messages_to_unmerge(messages, "merged") == ["m1", "m4"]


def test_mail_follows_merge_links_to_the_end_and_survives_a_cycle():
    assert rules.follow_merges("a", {"a": "b", "b": "c", "c": None}) == "c"
    assert rules.follow_merges("a", {"a": None}) == "a"
    assert rules.follow_merges("a", {}) == "a"
    assert rules.follow_merges("a", {"a": "b", "b": "a"}) == "b"
    chain = {str(i): str(i + 1) for i in range(100)}
    assert rules.follow_merges("0", chain) == str(rules.MAX_MERGE_HOPS)


@pytest.mark.parametrize(
    ("until", "status"),
    [
        (NOW - timedelta(seconds=1), 422),
        (NOW, 422),
        (NOW + timedelta(days=400), 422),
        (NOW + timedelta(minutes=5), None),
    ],
)
def test_a_snooze_ends_in_the_future_within_a_year(until, status):
    refused = rules.snooze_refusal(conv("c"), until, NOW)
    assert (refused.status if refused else None) == status


def test_a_merged_conversation_is_not_snoozed_itself():
    assert rules.snooze_refusal(conv("c", merged_into="t"), NOW + timedelta(hours=1), NOW).status == 409


def test_each_snooze_has_its_own_token_and_remembers_the_status_before():
    first = rules.new_snooze(NOW + timedelta(hours=1), NOW, "pending")
    second = rules.new_snooze(NOW + timedelta(hours=1), NOW, "pending")
    assert first["token"] != second["token"]
    assert first["previous_status"] == "pending" and first["at"] == NOW


@pytest.mark.parametrize(
    ("current", "wanted", "allowed"),
    [
        ("held", "sending", True),
        ("held", "cancelled", True),
        ("sending", "sent", True),
        ("sending", "cancelled", False),  # once it started to leave, it cannot be cancelled
        ("sending", "sending", False),  # leaving twice
        ("sent", "sending", False),
        ("cancelled", "sending", False),
        ("held", "sent", False),
    ],
)
def test_a_scheduled_reply_moves_only_forward(current, wanted, allowed):
    assert rules.may_transition(current, wanted) is allowed


def test_a_new_schedule_is_held_with_a_token():
    schedule = rules.new_schedule(NOW + timedelta(hours=1), NOW)
    assert schedule["state"] == "held" and schedule["token"] and schedule["send_at"] == NOW + timedelta(hours=1)
    assert rules.schedule_refusal(NOW + timedelta(days=400), NOW).status == 422
    assert rules.schedule_refusal(NOW + timedelta(days=1), NOW) is None
    assert rules.seconds_until(NOW + timedelta(seconds=90), NOW) == 90


def test_the_openapi_document_shows_every_new_field_with_an_example():
    from mailstream_inbox.api.app import create_app
    from mailstream_inbox.settings import InboxSettings

    schemas = create_app(InboxSettings()).openapi()["components"]["schemas"]
    new_fields = {
        "ConversationPublic": ("merged_into", "snoozed_until"),
        "ReplyCreate": ("send_at",),
        "ReplyQueued": ("send_at",),
        "MessagePublic": ("schedule",),
        "MergeRequest": ("into",),
        "MoveRequest": ("conversation_id",),
        "MoveResult": ("kind", "to_conversation_id"),
        "SnoozeRequest": ("until",),
        "TimelineEntry": ("kind", "details"),
    }
    for schema, fields in new_fields.items():
        examples = schemas[schema]["examples"]
        for field in fields:
            assert field in schemas[schema]["properties"], (schema, field)
            assert any(example.get(field) is not None for example in examples), (schema, field)


def test_a_timeline_entry_goes_live_to_its_account_only_as_conversation_timeline():
    from mailstream_common.contracts import ConversationTimelineRecorded
    from mailstream_inbox.live_hub import to_live_event

    entry = ConversationTimelineRecorded(
        event_id="e1",
        account_id="a1",
        conversation_id="c1",
        entry_id="e1",
        kind="woke",
        at=NOW,
        actor="system",
        details={"reason": "time"},
    )
    account, live = to_live_event(entry)
    assert (account, live.name, live.id) == ("a1", "conversation.timeline", "e1")
    assert live.data == {
        "conversation_id": "c1",
        "entry_id": "e1",
        "kind": "woke",
        "at": NOW.isoformat(),
        "actor": "system",
        "details": {"reason": "time"},
    }
