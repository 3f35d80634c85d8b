"""The DNS adapter's configuration parsing (its lookups are exercised against a real DNS server in
`test_record_checks`)."""

import pytest

from mailstream_domains.dns_lookup import parse_nameserver


@pytest.mark.parametrize(
    ("entry", "parsed"),
    [("127.0.0.1", ("127.0.0.1", 53)), ("127.0.0.1:5353", ("127.0.0.1", 5353)), ("::1", ("::1", 53)),
     ("[::1]:5353", ("::1", 5353))],
)  # fmt: skip
def test_nameserver_entries(entry: str, parsed: tuple[str, int]) -> None:
    assert parse_nameserver(entry) == parsed
