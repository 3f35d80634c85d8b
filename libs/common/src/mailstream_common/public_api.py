"""The public operations the gateway forwards to domains, automation and sender, and the pure path logic of the
forwarding: normalise the raw request path once, match it against this allow-list, build the upstream path.

Nothing else of those services is reachable through the gateway: their internal routes (`/internal/...`), ops
routes (`/readyz`, `/metrics`) and anything added later stay private until listed here. A test asserts that this
table equals the operations in each upstream app's OpenAPI document.
"""

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import quote, unquote_to_bytes


@dataclass(frozen=True)
class Operation:
    service: str  # the upstream's name: domains, automation, sender
    method: str
    template: str  # the upstream's own route template, e.g. /v1/domains/{domain_id}

    @property
    def segments(self) -> tuple[str, ...]:
        return tuple(self.template.strip("/").split("/"))


#: Path prefixes the gateway hands to each upstream (what is under them is matched against the table).
PREFIXES = {"domains": "/v1/domains", "automation": "/v1/automation", "sender": "/v1/suppressions"}

PUBLIC_OPERATIONS: tuple[Operation, ...] = (
    Operation("domains", "POST", "/v1/domains"),
    Operation("domains", "GET", "/v1/domains"),
    Operation("domains", "GET", "/v1/domains/{domain_id}"),
    Operation("domains", "DELETE", "/v1/domains/{domain_id}"),
    Operation("domains", "POST", "/v1/domains/{domain_id}/verify"),
    Operation("domains", "POST", "/v1/domains/{domain_id}/dkim/rotate"),
    Operation("automation", "POST", "/v1/automation/rules"),
    Operation("automation", "GET", "/v1/automation/rules"),
    Operation("automation", "POST", "/v1/automation/rules/test"),
    Operation("automation", "GET", "/v1/automation/rules/{rule_id}"),
    Operation("automation", "PATCH", "/v1/automation/rules/{rule_id}"),
    Operation("automation", "DELETE", "/v1/automation/rules/{rule_id}"),
    Operation("automation", "GET", "/v1/automation/rules/{rule_id}/runs"),
    Operation("automation", "GET", "/v1/automation/runs"),
    Operation("sender", "GET", "/v1/suppressions"),
    Operation("sender", "POST", "/v1/suppressions"),
    Operation("sender", "GET", "/v1/suppressions/{address}"),
    Operation("sender", "DELETE", "/v1/suppressions/{address}"),
)


class PathRefused(Exception):
    """The request path is not forwarded: `status` is 400 (malformed or hostile) or 404 (no such operation)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class MethodRefused(Exception):
    """The path is a public operation's but not with this method: 405 with `allow`."""

    def __init__(self, allow: Sequence[str]) -> None:
        super().__init__(f"method not allowed (allowed: {', '.join(allow)})")
        self.allow = tuple(allow)


_MALFORMED_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Re-encoding of a path parameter: everything but unreserved characters and '@' (suppressed addresses) is escaped,
# so a parameter can never add a segment, a query or a fragment to the upstream URL.
_SAFE_IN_PARAMETER = "@-._~"


def split_path(raw_path: bytes) -> tuple[str, ...]:
    """The decoded segments of a raw request path (as on the wire, before any decoding), or PathRefused.

    Refused with 400, before anything is forwarded: non-ASCII or control bytes, backslashes, `;` parameters,
    malformed escapes, and any segment that decodes to a dot segment, holds a slash or backslash, a control
    character (NUL, CR, LF...), invalid UTF-8, or another escape (double encoding such as %252e). Empty segments
    (`//`, a trailing slash) are 404: no public operation has one.
    """
    try:
        text = raw_path.decode("ascii")
    except UnicodeDecodeError:
        raise PathRefused(400, "the path must be ASCII (percent-encode other characters)") from None
    if _CONTROL.search(text) or " " in text:
        raise PathRefused(400, "control characters in the path")
    if "\\" in text or ";" in text:
        raise PathRefused(400, "backslashes and ';' parameters are not allowed in the path")
    if not text.startswith("/"):
        raise PathRefused(400, "the path must start with /")
    if _MALFORMED_ESCAPE.search(text):
        raise PathRefused(400, "malformed percent-escape in the path")
    segments = []
    for raw in text[1:].split("/"):
        if raw in (".", ".."):
            raise PathRefused(400, "dot segments are not allowed in the path")
        if not raw:
            raise PathRefused(404, "not found")
        try:
            value = unquote_to_bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            raise PathRefused(400, "the path is not UTF-8 once decoded") from None
        if value in (".", ".."):
            raise PathRefused(400, "dot segments are not allowed in the path")
        if "/" in value or "\\" in value:
            raise PathRefused(400, "encoded slashes are not allowed in the path")
        if _CONTROL.search(value):
            raise PathRefused(400, "control characters in the path")
        if _ESCAPE.search(value):
            raise PathRefused(400, "double-encoded characters are not allowed in the path")
        segments.append(value)
    return tuple(segments)


@dataclass(frozen=True)
class Matched:
    operation: Operation
    params: dict[str, str]

    @property
    def upstream_path(self) -> str:
        """The upstream path built from the template, each parameter re-encoded (never the client's path)."""
        parts = []
        for segment in self.operation.segments:
            if segment.startswith("{") and segment.endswith("}"):
                parts.append(quote(self.params[segment[1:-1]], safe=_SAFE_IN_PARAMETER))
            else:
                parts.append(segment)
        return "/" + "/".join(parts)


def _bind(template: tuple[str, ...], segments: tuple[str, ...]) -> dict[str, str] | None:
    if len(template) != len(segments):
        return None
    params = {}
    for expected, actual in zip(template, segments, strict=True):
        if expected.startswith("{") and expected.endswith("}"):
            params[expected[1:-1]] = actual
        elif expected != actual:
            return None
    return params


def _literal_count(operation: Operation) -> int:
    return sum(1 for s in operation.segments if not s.startswith("{"))


def match(method: str, segments: tuple[str, ...], operations: Iterable[Operation] = PUBLIC_OPERATIONS) -> Matched:
    """The public operation for this method and path, or PathRefused(404) / MethodRefused (405).

    A path is the most literal template it fits, as documented: `/rules/test` is the path of `POST /rules/test`
    only, so `GET /rules/test` is 405 (not a rule id "test", which no rule has), and its `Allow` says POST."""
    fitting = [(op, params) for op in operations if (params := _bind(op.segments, segments)) is not None]
    most_literal = max((_literal_count(op) for op, _ in fitting), default=0)
    candidates = [(op, params) for op, params in fitting if _literal_count(op) == most_literal]
    same_method = [(op, params) for op, params in candidates if op.method == method.upper()]
    if same_method:
        return Matched(*same_method[0])
    if candidates:
        raise MethodRefused(sorted({op.method for op, _ in candidates}))
    raise PathRefused(404, "not found")


def service_of(segments: tuple[str, ...]) -> str | None:
    """Which upstream owns a path (by prefix), or None."""
    path = "/" + "/".join(segments)
    for service, prefix in PREFIXES.items():
        if path == prefix or path.startswith(prefix + "/"):
            return service
    return None
