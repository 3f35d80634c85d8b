"""The suppression lookup over an account's cached list. Plain logic, no I/O."""

from datetime import UTC, datetime

import pytest

from mailstream_sender.caches import suppressed_among
from mailstream_sender.repositories.suppressions import Suppression


def _suppression(address: str) -> Suppression:
    return Suppression(address, "bounced", "bounces", 2, datetime(2026, 1, 1, tzinfo=UTC))


KNOWN = {"kana@example.net": _suppression("kana@example.net"), "ceo@example.org": _suppression("ceo@example.org")}


@pytest.mark.parametrize(
    ("addresses", "expected"),
    [
        (
            ["CEO@example.org", "ok@example.net", " Kana@Example.net", "ceo@example.org"],
            ["ceo@example.org", "kana@example.net"],
        ),
        (["ok@example.net"], []),
        ([], []),
        (["kana@example.net", "KANA@EXAMPLE.NET"], ["kana@example.net"]),
    ],
)
def test_suppressed_among_is_case_insensitive_each_once_in_order(addresses, expected):
    assert [s.address for s in suppressed_among(KNOWN, addresses)] == expected
    assert suppressed_among({}, addresses) == []
