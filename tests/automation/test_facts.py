"""Facts are normalised once: addresses and header names lower-cased, times aware, the body bounded."""

from datetime import UTC, datetime, timedelta, timezone

import pytest

from mailstream_automation.facts import BODY_LIMIT, build_facts, facts_from_message
from mailstream_common.contracts import Address
from tests.automation.support import stored_message


@pytest.mark.parametrize(
    ("given", "field", "expected"),
    [
        ({"from_address": " Kana@Example.NET "}, "from_address", "kana@example.net"),
        ({"from_address": None}, "from_address", ""),
        ({"to": ["A@X.test", "", "b@y.test"]}, "to", ("a@x.test", "b@y.test")),
        ({"cc": [" C@Z.test"]}, "cc", ("c@z.test",)),
        ({"headers": [(" X-Priority ", "1"), ("List-Id", None)]}, "headers", (("x-priority", "1"), ("list-id", ""))),
        ({"authentication": {"spf": "PASS", "dkim": None}}, "authentication", {"spf": "pass", "dkim": "none"}),
        ({"body": "x" * (BODY_LIMIT + 10)}, "body", "x" * BODY_LIMIT),
        ({"subject": None}, "subject", ""),
    ],
)
def test_build_facts_normalises(given, field, expected):
    assert getattr(build_facts(**({"from_address": "k@x.test"} | given)), field) == expected


@pytest.mark.parametrize(
    ("received_at", "expected"),
    [
        (datetime(2026, 3, 1, 9, 0), datetime(2026, 3, 1, 9, 0, tzinfo=UTC)),  # naive means UTC
        (
            datetime(2026, 3, 1, 9, 0, tzinfo=timezone(timedelta(hours=9))),
            datetime(2026, 3, 1, 0, 0, tzinfo=UTC),
        ),
    ],
)
def test_received_at_is_always_aware(received_at, expected):
    when = build_facts(from_address="k@x.test", received_at=received_at).received_at
    assert when.tzinfo is not None and when == expected


@pytest.mark.parametrize(("address", "domain"), [("kana@example.net", "example.net"), ("", ""), ("no-at-sign", "")])
def test_from_domain(address, domain):
    assert build_facts(from_address=address).from_domain == domain


def test_header_values_are_every_occurrence_by_case_insensitive_name():
    facts = build_facts(from_address="k@x.test", headers=[("Received", "a"), ("X-Other", "b"), ("RECEIVED", "c")])
    assert facts.header_values("received") == ["a", "c"]
    assert facts.header_values("Missing") == []


def test_facts_from_a_stored_message():
    event = stored_message(
        "acc",
        from_=Address(name="Kana", address="Kana@Example.net"),
        cc=[Address(address="Boss@Acme.test")],
        headers=[("Auto-Submitted", "no")],
        has_attachment=True,
    )
    facts = facts_from_message(event)
    assert (facts.from_address, facts.from_name, facts.from_domain) == ("kana@example.net", "Kana", "example.net")
    assert facts.to == ("support@acme.test",) and facts.cc == ("boss@acme.test",)
    assert facts.subject == event.subject and facts.body == event.text
    assert facts.headers == (("auto-submitted", "no"),)
    assert facts.has_attachment and facts.is_first_message
    assert set(facts.authentication) == {"spf", "dkim", "dmarc"}
    assert facts.received_at == event.received_at


def test_a_message_without_a_sender_has_an_empty_from():
    facts = facts_from_message(stored_message("acc", from_=None))
    assert facts.from_address == "" and facts.from_name == "" and facts.from_domain == ""
