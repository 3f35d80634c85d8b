"""Consumer of this replica's own queue (`domain.changed`, `stream.changed`): keeps the per-process caches current.

`domain.changed` drops the domain's signing key; `stream.changed` is applied to the `stream_settings` projection
(if this replica got it before the shared projection queue did) and then drops the stream record, so the next mail
re-reads a projection at least as new as the event.
"""

from mailstream_common.broker import Delivery
from mailstream_common.contracts import DomainChanged, StreamChanged

from ..caches import StreamCache
from ..repositories.stream_settings import StreamSettings
from ..signing_keys import SigningKeyCache


class ReplicaEvents:
    def __init__(self, keys: SigningKeyCache, streams: StreamCache, settings: StreamSettings | None = None) -> None:
        self.keys = keys
        self.streams = streams
        self.settings = settings

    async def handle(self, event: DomainChanged | StreamChanged, delivery: Delivery) -> None:
        if isinstance(event, DomainChanged):
            self.keys.invalidate(event.name)
        else:
            if self.settings is not None:
                await self.settings.apply(event)
            self.streams.invalidate(event.stream_id)
