"""The domains service as the source of signing keys: `GET /internal/signing-key`, answers cached per domain.

Keys are parsed once per cache fill, because a PEM load is costly, and kept only in memory; they are never logged.
The cache is invalidated per domain by `domain.changed` events (rotation, verification, removal) and expires after
a TTL as a safety net for a missed event. A domain without a verified key (404) is cached as "unsigned" too.
"""

import logging

import httpx

from .read_through import ReadThroughCache
from .signing import SigningKey, SigningKeyUnavailable, load_signing_key

log = logging.getLogger(__name__)


class SigningKeyCache:
    """Asks `GET {domains_url}/internal/signing-key?domain=&account_id=` and remembers the answer per domain."""

    def __init__(self, http: httpx.AsyncClient, domains_url: str, sender_token: str, ttl_seconds: float = 300.0):
        self.http = http
        self.domains_url = domains_url
        self.sender_token = sender_token  # the sender's own credential: domains opens the key route to it only
        # One fetch per domain however many mails wait; a domain.changed during a fetch disowns its answer.
        self._cache: ReadThroughCache[tuple[str, str], SigningKey | None] = ReadThroughCache(
            "signing_keys", lambda key: self._fetch(*key), ttl_seconds=ttl_seconds
        )

    async def get(self, domain: str, account_id: str) -> SigningKey | None:
        """The loaded key, or None when the domain has no verified key (send unsigned)."""
        return await self._cache.get((domain.lower(), account_id))

    def invalidate(self, domain: str) -> None:
        domain = domain.lower()
        self._cache.invalidate_where(lambda key: key[0] == domain)

    async def _fetch(self, domain: str, account_id: str) -> SigningKey | None:
        try:
            response = await self.http.get(
                f"{self.domains_url.rstrip('/')}/internal/signing-key",
                params={"domain": domain, "account_id": account_id},
                headers={"X-Internal-Token": self.sender_token},
            )
        except httpx.HTTPError as exc:
            raise SigningKeyUnavailable(f"domains service unreachable: {type(exc).__name__}") from exc
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise SigningKeyUnavailable(f"domains service answered {response.status_code}")
        try:
            key = load_signing_key(response.json())
        except (ValueError, KeyError, TypeError) as exc:
            # The message names the problem, never the key material.
            raise SigningKeyUnavailable(f"unusable signing key for {domain}: {type(exc).__name__}") from None
        log.info("signing key loaded", extra={"domain": domain, "selector": key.selector})
        return key
