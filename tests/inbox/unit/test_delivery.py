"""Applying delivery reports, the pure part: which status wins, which raw copy is kept, what a claim records."""

from datetime import UTC, datetime

import pytest

from mailstream_common.contracts import DeliveryReported
from mailstream_inbox.consumers.delivery import holds, next_delivery, planned_claim, raw_blob_to_record

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


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


def test_a_claim_records_the_whole_change_and_whether_to_announce_it():
    message = {"_id": "m1", "raw_blob_id": None, "delivery": delivery("queued", version=3)}
    sent = report("sent", "250", correlation_id="corr")
    claim = planned_claim(message, sent, "sha", NOW)
    assert claim["_id"] == "m1:4" and (claim["message_id"], claim["version"]) == ("m1", 4)
    assert claim["delivery"] == next_delivery(message["delivery"], sent, NOW)
    assert (claim["raw_blob_id"], claim["announce"], claim["report_id"]) == ("sha", True, sent.event_id)
    assert claim["correlation_id"] == "corr" and claim["claimed_at"] == NOW

    deferral = planned_claim(message, report("deferred", "451 new", attempt=2), None, NOW)
    assert deferral["announce"] is False and deferral["delivery"]["detail"] == "451 new"


def test_a_report_that_changes_only_the_raw_copy_still_takes_a_version_and_announces_nothing():
    message = {"_id": "m1", "raw_blob_id": "old", "delivery": {**delivery("sent", "250"), "report_id": "r0"}}
    duplicate = report("sent", "250")
    claim = planned_claim(message, duplicate, "new", NOW)
    assert claim["version"] == 2 and claim["raw_blob_id"] == "new" and claim["announce"] is False
    assert {k: v for k, v in claim["delivery"].items() if k not in ("version", "report_id")} == {
        k: v for k, v in message["delivery"].items() if k not in ("version", "report_id")
    }
    assert planned_claim(message, duplicate, "old", NOW) is None  # nothing at all changes
    assert holds({"delivery": claim["delivery"]}, claim)
    assert not holds(message, claim)
