"""API-key authentication: turn a bearer key into the account and role it acts for.

A verified key is remembered per replica for a few seconds (`INBOX_API_KEY_CACHE_SECONDS`) so that a page load
does not cost one extra query per request. Revoking a key through the API publishes `api_key.revoked`, which every
gateway replica receives on its replica queue and forgets the key at once; the cache lifetime bounds the delay
only when that broadcast is lost (the broker refused it) or the key was revoked behind the API's back (the CLI).
"""

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from typing import Literal

from pymongo.asynchronous.database import AsyncDatabase

from .repositories import api_keys as api_keys_repo

Role = Literal["admin", "agent"]


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's account and role. Every query of a route is scoped to `account_id`."""

    account_id: str
    role: Role
    key_id: str
    key_name: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def actor(self) -> str:
        """The `requested_by` / `changed_by` value of events caused by this key."""
        return f"agent:{self.key_id}"


class KeyCache:
    """key digest -> (principal, expiry), bounded so that a flood of distinct keys cannot grow it without end."""

    def __init__(self, ttl_seconds: float, max_entries: int = 10_000) -> None:
        self.ttl = ttl_seconds
        self.max_entries = max_entries
        self._entries: dict[str, tuple[Principal, float]] = {}

    def get(self, digest: str) -> Principal | None:
        entry = self._entries.get(digest)
        if entry is None:
            return None
        principal, expires = entry
        if expires < time.monotonic():
            self._entries.pop(digest, None)
            return None
        return principal

    def put(self, digest: str, principal: Principal) -> None:
        if self.ttl <= 0:
            return
        if len(self._entries) >= self.max_entries:
            self._entries.clear()
        self._entries[digest] = (principal, time.monotonic() + self.ttl)

    def forget_key(self, key_id: str) -> None:
        for digest, (principal, _) in list(self._entries.items()):
            if principal.key_id == key_id:
                self._entries.pop(digest, None)


async def authenticate(db: AsyncDatabase, key: str, cache: KeyCache | None = None) -> Principal | None:
    """The principal of a valid, unrevoked key; None otherwise."""
    if not api_keys_repo.looks_like_key(key):
        return None
    digest = api_keys_repo.hash_key(key)
    if cache is not None and (hit := cache.get(digest)) is not None:
        return hit
    doc = await api_keys_repo.find_active_key(db, key)
    if doc is None:
        return None
    principal = Principal(account_id=doc["account_id"], role=doc["role"], key_id=doc["_id"], key_name=doc["name"])
    if cache is not None:
        cache.put(digest, principal)
    return principal


# --- SSE tickets: browsers' EventSource cannot send an Authorization header ---

TICKET_SECONDS = 60


def _ticket_key(secret: str) -> bytes:
    return hashlib.sha256(b"mailstream-sse-ticket:" + secret.encode()).digest()


def issue_ticket(principal: Principal, secret: str, *, now: float | None = None) -> tuple[str, float]:
    """A short-lived signed ticket standing for `principal` on `GET /v1/events?ticket=`; (ticket, expiry epoch).

    Signed with a key derived from the internal token, so every gateway replica accepts it; it only opens a stream
    (a key in a URL would end up in proxy logs, a ticket there expires in a minute).
    """
    expires = (now if now is not None else time.time()) + TICKET_SECONDS
    payload = json.dumps(
        {"a": principal.account_id, "r": principal.role, "k": principal.key_id, "n": principal.key_name, "e": expires},
        separators=(",", ":"),
    ).encode()
    body = base64.urlsafe_b64encode(payload).decode().rstrip("=")
    signature = hmac.new(_ticket_key(secret), body.encode(), hashlib.sha256).hexdigest()
    return f"{body}.{signature}", expires


def read_ticket(ticket: str, secret: str, *, now: float | None = None) -> Principal | None:
    """The principal of a valid, unexpired ticket; None otherwise."""
    body, _, signature = ticket.partition(".")
    expected = hmac.new(_ticket_key(secret), body.encode(), hashlib.sha256).hexdigest()
    if not signature or not hmac.compare_digest(signature, expected):
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        if data["e"] < (now if now is not None else time.time()) or data["r"] not in ("admin", "agent"):
            return None
        return Principal(account_id=data["a"], role=data["r"], key_id=data["k"], key_name=data["n"])
    except (ValueError, KeyError, TypeError):
        return None
