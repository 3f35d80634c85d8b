"""Raw request targets that try to leave the gateway's proxied prefixes (issue 9), for the pure and live tests."""

from mailstream_common.public_api import PREFIXES

# Ways to write "go up one segment" that some layer might decode or normalise into "../".
UP = {
    "plain": "../",
    "encoded": "%2e%2e/",
    "encoded-upper": "%2E%2E/",
    "double-encoded": "%252e%252e/",
    "encoded-slash": "..%2f",
    "encoded-slash-upper": "..%2F",
    "all-encoded": "%2e%2e%2f",
    "backslash": "..\\",
    "encoded-backslash": "..%5c",
    "half-encoded": ".%2e/",
    "other-half-encoded": "%2e./",
    "double-encoded-slash": "..%252f",
    "semicolon": ";/../",
    "dot-slash-dot": "./../",
}

# What an attacker wants to reach on the upstream once out of the prefix.
TARGETS = (
    "internal/signing-key?domain={domain}&account_id={account}",
    "readyz",
    "metrics",
    "healthz",
    "openapi.json",
    "docs",
)

# Suffixes that smuggle a terminator or a header into the forwarded request.
SUFFIXES = {"nul": "%00", "crlf": "%0d%0a", "crlf-header": "%0d%0aX-Role:%20admin"}


def traversal_targets(domain: str = "victim.test", account: str = "victim-account") -> dict[str, bytes]:
    """name -> raw request target, through every proxied prefix."""
    out: dict[str, bytes] = {}
    for service, prefix in PREFIXES.items():
        for up_name, up in UP.items():
            for target in TARGETS:
                where = target.split("?")[0].replace("/", "-")
                text = target.format(domain=domain, account=account)
                out[f"{service}/{up_name}/{where}"] = (prefix + "/" + up * 3 + text).encode()
        for suffix_name, suffix in SUFFIXES.items():
            out[f"{service}/{suffix_name}"] = (prefix + "/x" + suffix).encode()
            out[f"{service}/{suffix_name}-after-up"] = (prefix + "/../../readyz" + suffix).encode()
        # Control characters inside a proxied path parameter (a 500 from httpx.InvalidURL before the fix).
        out[f"{service}/control-in-parameter"] = (prefix + "/a%0Fb").encode()
        out[f"{service}/query-and-control-in-parameter"] = (prefix + "/%3Fx%01").encode()
    # The reproductions, exactly.
    out["issue/dot-dot"] = f"/v1/domains/../../internal/signing-key?domain={domain}&account_id={account}".encode()
    out["issue/encoded"] = (
        f"/v1/domains/%2E%2E/%2E%2E/internal/signing-key?domain={domain}&account_id={account}".encode()
    )
    out["issue/suppressions-readyz"] = b"/v1/suppressions/../../readyz"
    out["issue/automation-metrics"] = b"/v1/automation/../../metrics"
    out["issue/rule-control"] = b"/v1/automation/rules/a%0Fb"
    out["issue/domain-control"] = b"/v1/domains/%3Fx%01"
    return out
