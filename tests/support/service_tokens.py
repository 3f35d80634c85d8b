"""The service credentials of test runs: each caller's own token and the digests receivers are configured with."""

from mailstream_common.service_auth import token_digest

GATEWAY_TOKEN = "test-gateway-token"
SENDER_TOKEN = "test-sender-token"
VERP_SECRET = "test-verp-secret"


def service_env(gateway: str = GATEWAY_TOKEN, sender: str = SENDER_TOKEN, verp: str = VERP_SECRET) -> dict[str, str]:
    """Environment for any of the services (each reads only its own share of it, as a deployment would give it)."""
    return {
        "MAILSTREAM_GATEWAY_TOKEN": gateway,
        "MAILSTREAM_SENDER_TOKEN": sender,
        "MAILSTREAM_GATEWAY_TOKEN_SHA256": token_digest(gateway),
        "MAILSTREAM_SENDER_TOKEN_SHA256": token_digest(sender),
        "MAILSTREAM_VERP_SECRET": verp,
    }


def callers(gateway: str = GATEWAY_TOKEN, sender: str = SENDER_TOKEN) -> dict[str, str]:
    """`app.state.service_callers` for apps built in-process."""
    return {"gateway": token_digest(gateway), "sender": token_digest(sender)}
