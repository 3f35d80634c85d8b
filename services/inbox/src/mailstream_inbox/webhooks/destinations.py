"""Where a webhook may be sent: the URL rules and the address check that keeps the dispatcher from being used to
reach the operator's own network (SSRF).

A destination is refused when its host is, or resolves to, an address that is not globally routable: loopback,
private (RFC 1918, fc00::/7), link-local (169.254/16 with the cloud metadata services, fe80::/10), carrier-grade
NAT, multicast, reserved or unspecified, and IPv4-mapped IPv6 forms of those. Every resolved address must pass,
so a name with one public and one private address is refused. The operator may allow private destinations
(`WEBHOOKS_ALLOW_PRIVATE_DESTINATIONS`, e.g. for an on-premises CRM; the tests use it for 127.0.0.1).
"""

import ipaddress
from urllib.parse import urlsplit, urlunsplit

ALLOWED_SCHEMES = ("https", "http")
MAX_URL_LENGTH = 2048


class DestinationRefused(ValueError):
    """The URL or the address it resolves to may not receive webhooks; the message says why."""


def check_url(url: str) -> str:
    """The URL, if its form is acceptable (scheme, host, no credentials, no fragment); else DestinationRefused."""
    if len(url) > MAX_URL_LENGTH:
        raise DestinationRefused(f"the URL is longer than {MAX_URL_LENGTH} characters")
    if any(ch in url for ch in "\r\n\t ") or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
        raise DestinationRefused("the URL holds whitespace or control characters")
    parts = urlsplit(url)
    if parts.scheme not in ALLOWED_SCHEMES:
        raise DestinationRefused("the URL must be http:// or https://")
    if not parts.hostname:
        raise DestinationRefused("the URL has no host")
    if parts.username is not None or parts.password is not None:
        raise DestinationRefused("the URL may not carry credentials; use the signature to authenticate us")
    if parts.fragment:
        raise DestinationRefused("the URL may not have a fragment")
    try:
        _ = parts.port
    except ValueError:
        raise DestinationRefused("the URL's port is not a number from 0 to 65535") from None
    return url


def refusal_of_address(address: str) -> str | None:
    """Why this IP address may not receive webhooks, or None if it is globally routable."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return f"{address!r} is not an IP address"
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for attribute, label in (
        ("is_loopback", "loopback"),
        ("is_link_local", "link-local"),
        ("is_multicast", "multicast"),
        ("is_unspecified", "unspecified"),
        ("is_reserved", "reserved"),
        ("is_private", "private"),
    ):
        if getattr(ip, attribute):
            return f"{ip} is a {label} address"
    if not ip.is_global:  # carrier-grade NAT (100.64/10) and other non-global ranges
        return f"{ip} is not a public address"
    return None


def refusal_of_addresses(addresses: list[str], *, allow_private: bool) -> str | None:
    """Why the resolved addresses of a destination are refused (the first bad one), or None."""
    if not addresses:
        return "the host does not resolve"
    if allow_private:
        return None
    for address in addresses:
        if (reason := refusal_of_address(address)) is not None:
            return reason
    return None


def display_url(url: str) -> str:
    """The URL without its query string (which may hold the receiver's token), for logs and events."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def pinned(url: str, address: str) -> tuple[str, str, str | None]:
    """(URL to connect to, Host header, TLS server name) for sending to `url` at the checked `address`: the
    connection goes to the address that passed the check, never to a second DNS answer (DNS rebinding), while the
    Host header and the certificate check (SNI) still name the URL's host."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    literal = f"[{address}]" if ":" in address else address
    target = urlunsplit((parts.scheme, f"{literal}:{port}", parts.path or "/", parts.query, ""))
    host = parts.hostname or ""
    host_header = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        host_header = f"{host_header}:{parts.port}"
    return target, host_header, host if parts.scheme == "https" else None
