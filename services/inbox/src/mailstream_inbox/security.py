"""API-key authentication: turn a bearer key into the account and role it acts for.

A verified key is remembered per replica for a few seconds (`INBOX_API_KEY_CACHE_SECONDS`) so that a page load
does not cost one extra query per request; revoking through this replica forgets it at once, other replicas
within that delay.
"""

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
