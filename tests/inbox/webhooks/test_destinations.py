"""SSRF: which URLs and addresses may receive webhooks (table-driven)."""

import pytest

from mailstream_inbox.webhooks.destinations import (
    DestinationRefused,
    check_url,
    display_url,
    pinned,
    refusal_of_address,
    refusal_of_addresses,
)

REFUSED_ADDRESSES = [
    ("127.0.0.1", "loopback"),
    ("127.8.9.10", "loopback"),
    ("::1", "loopback"),
    ("10.1.2.3", "private"),
    ("172.16.0.1", "private"),
    ("192.168.1.1", "private"),
    ("fd00::1", "private"),
    ("169.254.169.254", "link-local"),  # cloud metadata services
    ("fe80::1", "link-local"),
    ("0.0.0.0", "unspecified"),
    ("::", "unspecified"),
    ("224.0.0.1", "multicast"),
    ("100.64.0.1", "not a public"),  # carrier-grade NAT
    ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped
    ("::ffff:10.0.0.1", "private"),
    ("240.0.0.1", "reserved"),
]


@pytest.mark.parametrize(("address", "label"), REFUSED_ADDRESSES)
def test_non_public_addresses_are_refused(address, label):
    reason = refusal_of_address(address)
    assert reason is not None and label in reason


@pytest.mark.parametrize("address", ["93.184.215.14", "8.8.8.8", "2606:4700::1111", "1.1.1.1"])
def test_public_addresses_pass(address):
    assert refusal_of_address(address) is None


def test_every_resolved_address_must_pass_unless_the_operator_allows_private_ones():
    assert "private" in refusal_of_addresses(["8.8.8.8", "10.0.0.1"], allow_private=False)
    assert refusal_of_addresses(["8.8.8.8", "10.0.0.1"], allow_private=True) is None
    assert refusal_of_addresses([], allow_private=True) == "the host does not resolve"


@pytest.mark.parametrize(
    "url",
    ["https://crm.example.com/hook", "http://example.com:8080/a?b=c", "https://[2606:4700::1111]/x"],
)
def test_acceptable_urls(url):
    assert check_url(url) == url


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ftp://example.com/", "http"),
        ("file:///etc/passwd", "http"),
        ("https://user:pw@example.com/", "credentials"),
        ("https:///path", "no host"),
        ("https://example.com/#frag", "fragment"),
        ("https://example.com/a\r\nX-Injected: 1", "control"),
        ("https://example.com:99999/", "port"),
        ("https://example.com/" + "a" * 2100, "longer"),
    ],
)
def test_refused_urls_say_why(url, why):
    with pytest.raises(DestinationRefused, match=why):
        check_url(url)


def test_the_display_url_drops_the_query_that_may_hold_a_token():
    assert display_url("https://crm.example.com/hook?token=s3cret") == "https://crm.example.com/hook"


@pytest.mark.parametrize(
    ("url", "address", "expected"),
    [
        (
            "https://crm.example.com/hook?t=1",
            "93.184.215.14",
            ("https://93.184.215.14:443/hook?t=1", "crm.example.com", "crm.example.com"),
        ),
        ("http://crm.example.com:8080", "10.0.0.5", ("http://10.0.0.5:8080/", "crm.example.com:8080", None)),
        (
            "https://crm.example.com/h",
            "2606:4700::1111",
            ("https://[2606:4700::1111]:443/h", "crm.example.com", "crm.example.com"),
        ),
        ("http://[::1]:9000/h", "::1", ("http://[::1]:9000/h", "[::1]:9000", None)),
    ],
)
def test_the_connection_is_pinned_to_the_checked_address_with_the_hosts_name_kept(url, address, expected):
    assert pinned(url, address) == expected
