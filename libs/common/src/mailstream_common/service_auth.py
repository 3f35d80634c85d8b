"""How the services authenticate each other: one dependency for every service-to-service HTTP route.

Each calling service has its own secret token (`MAILSTREAM_GATEWAY_TOKEN` for the inbox gateway,
`MAILSTREAM_SENDER_TOKEN` for the sender) and sends it in `X-Internal-Token`. A receiving service holds only the
SHA-256 of each caller's token (`MAILSTREAM_GATEWAY_TOKEN_SHA256`, `MAILSTREAM_SENDER_TOKEN_SHA256`), so holding
one service's configuration never lets you call as another. Each route names the callers it accepts:

    @app.get("/internal/signing-key", dependencies=[Depends(require_caller("sender"))])

Missing or unknown token: 401. A known service the route does not accept: 403. Public routes forwarded by the
gateway use `forwarded_account`: the gateway's token plus the account, role and key it authenticated; the account
scope of those calls comes only from these headers, never from the client's path or query.
"""

import hashlib
import hmac
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Depends, HTTPException, Request

TOKEN_HEADER = "X-Internal-Token"  # noqa: S105 - a header name
#: Headers only the gateway sets; it drops whatever the client sent under these names.
GATEWAY_HEADERS = ("x-internal-token", "x-account-id", "x-role", "x-key-id", "x-correlation-id")
CALLERS = ("gateway", "sender")
#: The statuses `forwarded_account` / `admin_only` answer, for the `responses=` of the routes that use them.
AUTH_RESPONSES: dict[int | str, dict] = {
    401: {"description": "Missing or invalid API key (or not called through the gateway)"},
    403: {"description": "The key's role may not do this (changes need an admin key)"},
}

log = logging.getLogger(__name__)


def token_digest(token: str) -> str:
    """The form a receiving service is configured with (hex SHA-256 of the caller's token)."""
    return hashlib.sha256(token.encode()).hexdigest()


def identify(token: str | None, digests: Mapping[str, str]) -> str | None:
    """The name of the service whose token this is, or None. Compares every digest (no early exit on a match)."""
    if not token:
        return None
    presented = token_digest(token).encode()
    found = None
    for name, digest in digests.items():
        if digest and hmac.compare_digest(presented, digest.strip().lower().encode()):
            found = name
    return found


def derive_key(token: str, purpose: str) -> bytes:
    """A key for one purpose of a service's own secret (e.g. the gateway's SSE tickets), so that a key used for
    one job never doubles as the credential itself."""
    return hmac.new(token.encode(), f"mailstream:{purpose}".encode(), hashlib.sha256).digest()


def _digests(request: Request) -> Mapping[str, str]:
    digests = getattr(request.app.state, "service_callers", None)
    if digests is None:  # a wiring mistake, not a client error: fail closed and say so
        raise RuntimeError("app.state.service_callers is not set (see mailstream_common.service_auth)")
    return digests


def require_caller(*allowed: str) -> Callable[[Request], str]:
    """A FastAPI dependency: the calling service's name if its token is valid and it is one of `allowed`."""
    unknown = set(allowed) - set(CALLERS)
    if unknown:
        raise ValueError(f"unknown callers: {sorted(unknown)}")

    def dependency(request: Request) -> str:
        name = identify(request.headers.get(TOKEN_HEADER), _digests(request))
        if name is None:
            raise HTTPException(401, "a valid X-Internal-Token is required (call through the gateway)")
        if name not in allowed:
            log.warning(
                "service refused", extra={"caller": name, "path": request.url.path, "allowed": ",".join(allowed)}
            )
            raise HTTPException(403, f"the {name} service may not call this route")
        request.state.service_caller = name
        return name

    dependency.__name__ = f"require_caller_{'_'.join(allowed)}"
    return dependency


Role = Literal["admin", "agent"]


@dataclass(frozen=True)
class Forwarded:
    """The account, role and API key the gateway authenticated for a forwarded public call."""

    account_id: str
    role: Role
    key_id: str | None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


_gateway_only = require_caller("gateway")


def forwarded_account(request: Request) -> Forwarded:
    """The dependency of every public route of domains, automation and sender: the gateway's token and its
    account headers. Incomplete headers are 401 (the gateway always sets all of them)."""
    _gateway_only(request)
    account_id = request.headers.get("x-account-id", "").strip()
    role = request.headers.get("x-role", "").strip()
    if not account_id or role not in ("admin", "agent"):
        raise HTTPException(401, "X-Account-Id and X-Role (admin or agent) are required")
    return Forwarded(account_id, role, request.headers.get("x-key-id"))  # type: ignore[arg-type]


def admin_only(message: str) -> Callable[[Forwarded], Forwarded]:
    """Wrap `forwarded_account` for routes that change things: an agent key gets 403 with `message`."""

    def dependency(who: Annotated[Forwarded, Depends(forwarded_account)]) -> Forwarded:
        if who.role != "admin":
            raise HTTPException(403, message)
        return who

    return dependency
