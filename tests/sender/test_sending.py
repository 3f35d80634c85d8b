"""The reply use case's guard steps, run in order over plain data: each answers None (go on) or why the mail must not
be sent. No broker, database or relay (the whole pipeline runs in tests/sender/consumers/test_replies.py)."""

from datetime import UTC, datetime, timedelta

import pytest

from mailstream_sender.repositories.stream_settings import StreamRecord
from mailstream_sender.repositories.suppressions import Suppression
from mailstream_sender.sending import Outgoing, ReplySender, SenderPolicy
from tests.sender.conftest import reply_command

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
STREAM = StreamRecord(
    id="s1", account_id="a1", address="support@acme.test", display_name="Acme Support", allow_agent_send=True
)


class Streams:
    async def get(self, stream_id: str) -> StreamRecord | None:
        return {"s1": STREAM, "closed": STREAM.model_copy(update={"allow_agent_send": False}),
                "gone": STREAM.model_copy(update={"deleted": True})}.get(stream_id)  # fmt: skip


class Suppressions:
    async def find(self, account_id: str, addresses: list[str]) -> list[Suppression]:
        return [Suppression(a, "complained", "api", 0, NOW) for a in addresses if a == "kana@example.net"]


def sender() -> ReplySender:
    policy = SenderPolicy("bounces.test", b"secret", max_age_seconds=3600, max_attempts=5, retention_hours=72)
    return ReplySender(
        None, None, None, None, None, policy, streams=Streams(), suppressions=Suppressions(), clock=lambda: NOW
    )  # type: ignore[arg-type]


async def first_refusal(**overrides) -> tuple[str | None, Outgoing]:
    account_id = overrides.pop("account_id", "a1")
    request = reply_command(account_id, overrides.pop("stream_id", "s1"), **overrides)
    recipients = [a.address.lower() for a in request.to]
    outgoing = Outgoing(request, recipients=recipients)
    for name, guard in sender().guards:
        if await guard(outgoing) is not None:
            return name, outgoing
    return None, outgoing


@pytest.mark.parametrize(
    ("overrides", "refused_by"),
    [
        ({"to": [{"address": "ok@example.net"}]}, None),
        ({"occurred_at": NOW - timedelta(hours=73)}, "command is within the record retention"),
        ({"stream_id": "unknown"}, "stream allows agents to send"),
        ({"stream_id": "gone"}, "stream allows agents to send"),
        ({"stream_id": "closed"}, "stream allows agents to send"),
        ({"account_id": "other"}, "stream allows agents to send"),
        ({"from": {"address": "ceo@acme.test"}}, "From is the stream's address"),
        ({"to": [{"address": "Kana@Example.net"}]}, "recipients are not suppressed"),
    ],
)
async def test_the_first_guard_that_refuses(overrides, refused_by):
    assert (await first_refusal(**overrides))[0] == refused_by


async def test_the_sender_is_the_streams_address_and_name():
    _, outgoing = await first_refusal(**{"from": {"name": "Agent", "address": "Support@Acme.test"}})
    assert (outgoing.sender.name, outgoing.sender.address) == ("Acme Support", "support@acme.test")


async def test_a_forwarding_test_is_sent_from_its_own_address_without_a_stream():
    refused, outgoing = await first_refusal(
        stream_id="unknown",
        kind="forwarding_test",
        to=[{"address": "ok@example.net"}],
        **{"from": {"address": "check@mailstream.test"}},
    )
    assert refused is None and outgoing.stream is None and outgoing.sender.address == "check@mailstream.test"


@pytest.mark.parametrize(
    ("stated", "attempt", "expected"),
    [
        (None, 1, 5.0),  # the backoff of a first attempt (at most 1 s here) waits on the shortest rung
        (40.0, 1, 120.0),  # the relay's own "try again in 40 s": the first rung that is at least that long
        (7200.0, 3, 3600.0),  # longer than the ladder: its longest rung
    ],
)
def test_the_next_attempt_is_on_a_rung_of_the_retry_ladder(stated, attempt, expected):
    from mailstream_sender.sending import retry_delay

    assert retry_delay(stated, attempt, 1.0, (5, 30, 120, 600, 1800, 3600)) == expected
