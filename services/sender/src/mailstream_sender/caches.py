"""Per-process caches in front of the two reads every mail's guard steps make: the stream record and the account's
suppression list, so that a mail with warm caches reads nothing from the database.

- Streams (inbox owns them; sender reads its own projection, `stream_settings`) are kept until `stream.changed`
  names them (this replica's own queue, next to `domain.changed`: the event is applied to the projection, then the
  entry dropped), or for a short TTL, the fallback for an event missed while the broker connection was down.
- Suppressions (this service writes them: the bounce consumer and the suppression API) are kept per account, as the
  whole list. A write through this process drops its account at once; a write by another replica is seen after at
  most the TTL (`SENDER_SUPPRESSION_CACHE_SECONDS`): that is the window in which a fresh suppression may not yet
  apply on the other replicas (and a lifted one may still refuse there).

Both (and the signing-key cache) are `read_through.ReadThroughCache`s.
"""

from collections.abc import Mapping

from mailstream_common.erasure import address_key

from .read_through import ReadThroughCache
from .repositories.stream_settings import StreamRecord, StreamSettings
from .repositories.suppressions import Suppression, Suppressions

StreamCache = ReadThroughCache[str, StreamRecord | None]


def stream_cache(projection: StreamSettings, *, ttl_seconds: float, max_entries: int = 10_000) -> StreamCache:
    """stream id -> the stream record (deleted ones included, so the guard can say why), or None if unknown."""

    async def load(stream_id: str) -> StreamRecord | None:
        return await projection.get(stream_id)

    return ReadThroughCache("streams", load, ttl_seconds=ttl_seconds, max_entries=max_entries)


AccountSuppressions = Mapping[str, Suppression] | None
"""An account's suppressed addresses; None when it has more than the cache holds (then each mail asks)."""


class SuppressionCache:
    """The guard's view of the suppression list. Registers itself with the repository so that every write through
    that repository object (this process's API and bounce consumer) drops the account at once."""

    def __init__(
        self, suppressions: Suppressions, *, ttl_seconds: float, max_accounts: int = 10_000, max_per_account: int = 5000
    ) -> None:
        self.suppressions = suppressions
        self.max_per_account = max_per_account
        self.cache: ReadThroughCache[str, AccountSuppressions] = ReadThroughCache(
            "suppressions", self._load, ttl_seconds=ttl_seconds, max_entries=max_accounts
        )
        suppressions.on_change.append(self.cache.invalidate)

    async def _load(self, account_id: str) -> AccountSuppressions:
        found = await self.suppressions.all_suppressed(account_id, limit=self.max_per_account + 1)
        return None if len(found) > self.max_per_account else {s.address: s for s in found}

    async def find(self, account_id: str, addresses: list[str]) -> list[Suppression]:
        """Those of `addresses` the account has suppressed."""
        known = await self.cache.get(account_id)
        if known is None:
            return await self.suppressions.find(account_id, addresses)
        found = suppressed_among(known, addresses)
        secret = self.suppressions.hash_secret
        if secret is not None and len(found) < len(addresses):  # an address kept only as its hash after an erasure
            hashed = (address_key(secret, a) for a in addresses)
            found += [known[h] for h in dict.fromkeys(hashed) if h in known]
        return found


def suppressed_among(known: Mapping[str, Suppression], addresses: list[str]) -> list[Suppression]:
    """The suppressions of `addresses` (case-insensitive, each once, in the order given)."""
    return [known[a] for a in dict.fromkeys(a.strip().lower() for a in addresses) if a in known]
