"""Applying delivery reports, the pure part: which status wins, which raw copy is kept, what a change records."""

from datetime import UTC, datetime, timedelta

import pytest

from mailstream_common.contracts import DeliveryReported
from mailstream_inbox.consumers.delivery import (
    ANNOUNCE_LEASE_SECONDS,
    changed_event,
    may_take_over,
    next_delivery,
    planned_change,
    raw_blob_to_record,
)

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
LATER = NOW + timedelta(minutes=5)


def report(status: str, detail: str = "", attempt: int = 1, **fields) -> DeliveryReported:
    return DeliveryReported(message_id="m1", status=status, detail=detail, attempt=attempt, **fields)


def delivery(status: str, detail: str = "", attempt: int = 1, version: int = 1) -> dict:
    return {"status": status, "detail": detail, "attempt": attempt, "version": version}


@pytest.mark.parametrize(
    ("current", "incoming", "expected_status"),
    [
        (None, report("sent", "250"), "sent"),
        (None, report("deferred", "451"), "queued"),
        (None, report("bounced", "550"), "failed"),
        (delivery("queued", "451 a"), report("deferred", "451 b", attempt=2), "queued"),
        (delivery("sent", "250"), report("failed", "554"), "failed"),
        (delivery("sent", "250"), report("bounced", "550"), "failed"),
        # Nothing moves backwards, and repeats change nothing.
        (delivery("sent", "250"), report("deferred", "451", attempt=3), None),
        (delivery("failed", "550"), report("sent", "250", attempt=3), None),
        (delivery("sent", "250"), report("sent", "250 again"), None),
        (delivery("failed", "550"), report("bounced", "550 later"), None),
        # A deferral only for an attempt at least as recent, and only with something new to say.
        (delivery("queued", "451 a", attempt=2), report("deferred", "451 old", attempt=1), None),
        (delivery("queued", "451 a", attempt=2), report("deferred", "451 a", attempt=2), None),
    ],
)
def test_the_status_only_moves_forward(current, incoming, expected_status):
    result = next_delivery(current, incoming, NOW)
    assert (result and result["status"]) == expected_status
    if result is not None:
        assert result["version"] == (current or {}).get("version", 0) + 1
        assert result["report_id"] == incoming.event_id and result["updated_at"] == NOW


def test_a_bounce_says_so_in_the_detail():
    assert next_delivery(delivery("sent"), report("bounced", "550 5.1.1 unknown"), NOW)["detail"] == (
        "bounced: 550 5.1.1 unknown"
    )
    assert next_delivery(delivery("sent"), report("bounced"), NOW)["detail"] == "bounced"


@pytest.mark.parametrize(
    ("recorded", "status", "sha", "expected"),
    [
        (None, "sent", "new", "new"),
        (None, "failed", "new", "new"),
        ("old", "sent", "new", "new"),  # what the relay accepted replaces an earlier attempt's bytes
        ("old", "failed", "new", None),  # a failed attempt's bytes never replace the sent ones
        ("same", "sent", "same", None),
        (None, "sent", None, None),
    ],
)
def test_which_raw_copy_is_kept(recorded, status, sha, expected):
    assert raw_blob_to_record({"raw_blob_id": recorded}, report(status), sha) == expected


def test_a_change_records_the_next_version_and_the_announcement_of_a_new_status():
    message = {"_id": "m1", "account_id": "a1", "raw_blob_id": None, "delivery": delivery("queued", version=3)}
    sent = report("sent", "250", correlation_id="corr")
    change = planned_change(message, sent, "sha", NOW, "owner-1")
    assert change["version"] == 4 and change["raw_blob_id"] == "sha"
    assert change["delivery"] == next_delivery(message["delivery"], sent, NOW)
    added = change["announcement"].pop("timeline")
    assert added == change["delivery"]["timeline"] and [e["type"] for e in added] == ["sent"]
    assert change["announcement"] == {
        "version": 4,
        "report_id": sent.event_id,
        "status": "sent",
        "detail": "250",
        "correlation_id": "corr",
        "owner": "owner-1",
        "since": NOW,
    }
    event = changed_event(message, change["announcement"])
    assert (event.message_id, event.status, event.detail, event.correlation_id) == ("m1", "sent", "250", "corr")
    again = changed_event(message, {**change["announcement"], "owner": "owner-2", "since": LATER})
    assert again.event_id == event.event_id, "whoever announces a version, it is the same event"

    # A new deferral keeps the status but is announced too, with its entries: the live stream shows each attempt.
    deferral = planned_change(message, report("deferred", "451 new", attempt=2), None, NOW, "owner-1")
    assert deferral["delivery"]["detail"] == "451 new"
    assert deferral["announcement"]["status"] == "queued"
    assert [e["type"] for e in deferral["announcement"]["timeline"]] == ["deferred"]


def test_a_report_that_changes_only_the_raw_copy_still_takes_a_version_and_announces_nothing():
    message = {"_id": "m1", "raw_blob_id": "old", "delivery": {**delivery("sent", "250"), "report_id": "r0"}}
    duplicate = report("sent", "250")
    change = planned_change(message, duplicate, "new", NOW, "owner")
    assert change["version"] == 2 and change["raw_blob_id"] == "new" and change["announcement"] is None
    assert {k: v for k, v in change["delivery"].items() if k not in ("version", "report_id")} == {
        k: v for k, v in message["delivery"].items() if k not in ("version", "report_id")
    }
    assert planned_change(message, duplicate, "old", NOW, "owner") is None  # nothing at all changes


def test_a_pending_announcement_is_taken_over_by_its_own_report_at_once_and_by_others_after_the_lease():
    mine = report("sent", "250")
    pending = {"report_id": mine.event_id, "since": NOW}
    assert may_take_over(pending, mine, NOW)
    assert not may_take_over(pending, report("bounced", "550"), NOW + timedelta(seconds=ANNOUNCE_LEASE_SECONDS - 1))
    assert may_take_over(pending, report("bounced", "550"), NOW + timedelta(seconds=ANNOUNCE_LEASE_SECONDS + 1))
