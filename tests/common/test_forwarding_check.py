"""The forwarding check mail's contract: the body inbox writes carries a token that ingest's pattern finds."""

import pytest

from mailstream_common.contracts.forwarding_check import (
    FORWARDING_TEST_MARKER,
    FORWARDING_TEST_TOKEN,
    forwarding_test_text,
)


@pytest.mark.parametrize(
    ("text", "token"),
    [
        (forwarding_test_text("support@acme.com", "tok_3f9a8b7c6d5e4f30"), "tok_3f9a8b7c6d5e4f30"),
        (f"> {FORWARDING_TEST_MARKER}: abcdefgh12\n", "abcdefgh12"),  # quoted by a forward
        (f"{FORWARDING_TEST_MARKER}:short\n", None),  # under 8 characters: not a token
        ("no marker here", None),
    ],
)
def test_token_in_body(text: str, token: str | None) -> None:
    found = FORWARDING_TEST_TOKEN.search(text)
    assert (found.group(1) if found else None) == token


def test_body_names_the_stream_address() -> None:
    assert "support@acme.com" in forwarding_test_text("support@acme.com", "tok_3f9a8b7c6d5e4f30")
