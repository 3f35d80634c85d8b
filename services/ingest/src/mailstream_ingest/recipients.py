"""Which RCPT TO addresses ingest accepts: forwarding addresses of live streams (also with a `+tag`, which our
replies' Reply-To uses for the conversation token), and VERP bounce addresses.

The stream lookup is a cache in front of ingest's own `stream_routes` projection (`repositories/stream_routes.py`;
inbox's `streams` collection is never read). It is fed by `stream.changed` events through a replica-local queue
(`consumers/stream_events.py`), so a new stream is acceptable and a deleted one refused as soon as its event
arrives; misses fall back to one read of the projection. A miss is remembered briefly (so a spammer's dictionary
attack does not become a database load test), and a hit is re-read after a while so that an event lost during a
broker reconnect cannot keep a deleted stream alive forever. Events carry the stream's version: an older one than
the cache has seen is ignored, and a lookup that raced an event for the same address does not overwrite what the
event said.
"""

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from mailstream_common import verp
from mailstream_common.contracts import StreamChanged
from mailstream_common.contracts.mail import StreamTarget
from mailstream_common.projection import is_newer


@dataclass(frozen=True)
class Route:
    """What the projection knows of a forwarding address: its stream, at which version, and whether it is live."""

    target: StreamTarget
    version: int
    live: bool = True


StreamLookup = Callable[[str], Awaitable[Route | None]]


@dataclass(frozen=True)
class Stream:
    target: StreamTarget


@dataclass(frozen=True)
class Bounce:
    token: str
    """The message id named by the VERP address."""


@dataclass(frozen=True)
class Unknown:
    pass


Resolution = Stream | Bounce | Unknown


class LookupUnavailable(RuntimeError):
    """The database could not be asked: the RCPT gets a temporary failure, not a 550."""


class StreamCache:
    """forwarding address -> live stream, with expiring positive and negative entries."""

    def __init__(
        self,
        lookup: StreamLookup,
        *,
        positive_ttl: float,
        negative_ttl: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lookup = lookup
        self._positive_ttl = positive_ttl
        self._negative_ttl = negative_ttl
        self._clock = clock
        self._live: dict[str, tuple[StreamTarget, float]] = {}
        self._absent: dict[str, float] = {}
        self._versions: dict[str, int] = {}  # stream id -> newest version applied from an event
        self._events = 0  # events applied so far
        self._event_seen: dict[str, int] = {}  # address -> `_events` when an event last touched it

    async def find(self, address: str) -> StreamTarget | None:
        address = address.lower()
        now = self._clock()
        hit = self._live.get(address)
        if hit is not None and hit[1] > now:
            return hit[0]
        absent_until = self._absent.get(address)
        if absent_until is not None and absent_until > now:
            return None
        events_before = self._events
        try:
            route = await self._lookup(address)
        except Exception as exc:
            raise LookupUnavailable(str(exc)) from exc
        if self._event_seen.get(address, -1) > events_before:
            # An event for this address arrived while we were reading: it is at least as new as what we read.
            hit = self._live.get(address)
            return hit[0] if hit is not None else None
        if route is not None:  # an event older than what the projection said must not undo it later
            stream_id = route.target.stream_id
            if is_newer(self._versions.get(stream_id), route.version):
                self._versions[stream_id] = route.version
        target = route.target if route is not None and route.live else None
        self._remember(address, target)
        return target

    def _remember(self, address: str, target: StreamTarget | None) -> None:
        now = self._clock()
        if target is None:
            self._live.pop(address, None)
            if self._negative_ttl > 0:
                if len(self._absent) > 100_000:  # bounded: a flood of random names must not grow memory forever
                    self._absent.clear()
                self._absent[address] = now + self._negative_ttl
        else:
            self._absent.pop(address, None)
            self._live[address] = (target, now + self._positive_ttl)

    def apply(self, event: StreamChanged) -> None:
        """Make the cache agree with a stream event at once (unless an event as new was applied already)."""
        if not is_newer(self._versions.get(event.stream_id), event.version):
            return
        if len(self._versions) > 100_000 or len(self._event_seen) > 100_000:  # bounded, like `_absent`
            self._versions.clear()
            self._event_seen.clear()
        self._versions[event.stream_id] = event.version
        address = event.forwarding_address.lower()
        self._events += 1
        self._event_seen[address] = self._events
        for known, (target, _) in list(self._live.items()):
            if target.stream_id == event.stream_id and known != address:
                del self._live[known]
        if event.deleted:
            self._remember(address, None)
        else:
            self._remember(
                address,
                StreamTarget(
                    forwarding_address=address,
                    stream_id=event.stream_id,
                    account_id=event.account_id,
                    stream_address=event.address.lower(),
                ),
            )


class RecipientDirectory:
    """Resolves one RCPT TO address; the SMTP handler turns the resolution into a reply."""

    def __init__(self, streams: StreamCache, *, verp_secret: bytes, bounce_domain: str) -> None:
        self.streams = streams
        self._verp_secret = verp_secret
        self._bounce_domain = bounce_domain.lower()

    async def resolve(self, address: str) -> Resolution:
        address = address.strip().lower()
        if "@" not in address:
            return Unknown()
        local, _, domain = address.rpartition("@")
        if domain == self._bounce_domain and local.startswith(verp.PREFIX):
            token = verp.decode_bounce_address(address, self._verp_secret, self._bounce_domain)
            if token:
                return Bounce(token)
        target = await self.streams.find(address)
        if target is None and "+" in local:
            # `forwarding+tag@`: the Reply-To of our replies carries the conversation's token as a sub-address.
            target = await self.streams.find(f"{local.split('+', 1)[0]}@{domain}")
        return Stream(target) if target is not None else Unknown()
