"""The contracts, the topology and docs/messages.md agree, and every contract survives the wire."""

import importlib.util
from datetime import UTC, datetime
from pathlib import Path

from mailstream_common import topology
from mailstream_common.contracts import ALL_EVENTS, MailReceived
from mailstream_common.contracts.mail import Envelope

ROOT = Path(__file__).resolve().parents[2]


def _generator():
    spec = importlib.util.spec_from_file_location("gen_messages_doc", ROOT / "scripts" / "gen_messages_doc.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_messages_doc_matches_the_contracts():
    assert (ROOT / "docs" / "messages.md").read_text() == _generator().render(), (
        "docs/messages.md is stale: run `uv run python scripts/gen_messages_doc.py`"
    )


def test_event_names_are_unique_routing_keys():
    names = [event.event_name for event in ALL_EVENTS]
    assert len(names) == len(set(names))


def test_every_event_has_a_consumer():
    replica_events = (
        set(topology.INGEST_STREAM_EVENTS)
        | set(topology.SENDER_DOMAIN_EVENTS)
        | set(topology.GATEWAY_LIVE_EVENTS)
        | set(topology.GATEWAY_KEY_EVENTS)
    )
    bound = {event for queue in topology.WORK_QUEUES for event in queue.events} | replica_events
    assert set(ALL_EVENTS) <= bound, set(ALL_EVENTS) - bound


def test_raw_bytes_survive_json_even_when_not_utf8():
    raw = b"Subject: \xff\xfe broken\r\n\r\n\x00\x80 body"
    event = MailReceived(
        mail_id="m1",
        received_at=datetime.now(UTC),
        envelope=Envelope(mail_from="", rcpt_to=["x@in.test"]),
        raw=raw,
        raw_sha256="0",
        size=len(raw),
    )
    again = MailReceived.model_validate_json(event.model_dump_json(by_alias=True))
    assert again.raw == raw
    assert again == event


def test_retry_tier_picks_the_smallest_delay_that_is_long_enough():
    spec = topology.QueueSpec("q", (), retry_delays=(1, 5, 30))
    assert [spec.retry_tier(x) for x in (0, 1, 2, 5, 29, 31, 1000)] == [1, 1, 5, 5, 30, 30, 30]
