"""DKIM signing of outgoing mail with the From domain's active key, fetched from the domains service and cached.

Keys are parsed once per cache fill (a PEM load costs ~27 ms) and kept only in memory; they are never logged.
The cache is invalidated per domain by `domain.changed` events (rotation, verification, removal) and expires after
a TTL as a safety net for a missed event. A domain without a verified key (404) is cached as "unsigned" too.
"""

import logging
from dataclasses import dataclass

import httpx
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from .dkim_fast import FastDKIM
from .read_through import ReadThroughCache

log = logging.getLogger(__name__)


class SigningKeyUnavailable(RuntimeError):
    """The domains service could not tell us the key right now (down, 5xx, bad answer): try the mail later."""


@dataclass(frozen=True, repr=False)
class SigningKey:
    """A domain's active DKIM keys, loaded. `repr` names the selector only: keys must never reach a log."""

    domain: str
    selector: str
    rsa_key: rsa.RSAPrivateKey
    ed25519_selector: str | None = None
    ed25519_key: ed25519.Ed25519PrivateKey | None = None

    def __repr__(self) -> str:
        return f"SigningKey({self.domain!r}, selector={self.selector!r}, ed25519={self.ed25519_selector!r})"


def load_signing_key(document: dict) -> SigningKey:
    """The domains service's answer as loaded keys; ValueError on anything unusable."""
    if document.get("algorithm", "rsa-sha256") != "rsa-sha256":
        raise ValueError(f"unsupported DKIM algorithm {document.get('algorithm')!r}")
    rsa_key = load_pem_private_key(document["private_key_pem"].encode(), password=None)
    if not isinstance(rsa_key, rsa.RSAPrivateKey):
        raise ValueError("private_key_pem is not an RSA key")
    ed_selector = ed_key = None
    if second := document.get("ed25519"):
        loaded = load_pem_private_key(second["private_key_pem"].encode(), password=None)
        if not isinstance(loaded, ed25519.Ed25519PrivateKey):
            raise ValueError("ed25519.private_key_pem is not an Ed25519 key")
        ed_selector, ed_key = second["selector"], loaded
    return SigningKey(document["domain"].lower(), document["selector"], rsa_key, ed_selector, ed_key)


def sign(message: bytes, key: SigningKey) -> bytes:
    """`message` with its DKIM-Signature header(s) prepended: RSA-SHA256, plus Ed25519-SHA256 (RFC 8463) when the
    domain has that key. Each signature covers the message only, not the other signature."""
    domain = key.domain.encode()
    headers = FastDKIM(message).sign_with_key(key.selector.encode(), domain, key.rsa_key)
    if key.ed25519_key is not None and key.ed25519_selector:
        ed = FastDKIM(message).sign_with_key(
            key.ed25519_selector.encode(), domain, key.ed25519_key, signature_algorithm=b"ed25519-sha256"
        )
        headers = ed + headers
    return headers + message


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
