"""This replica's own queue of `stream.changed` events, applied to its RCPT TO cache at once.

A replica-local queue (every replica sees every event), so a new stream is accepted and a deleted one refused
as soon as its event arrives. Applying the same event twice changes nothing.
"""

from mailstream_common.broker import Delivery
from mailstream_common.contracts import StreamChanged

from ..recipients import StreamCache


class StreamEventsConsumer:
    def __init__(self, cache: StreamCache) -> None:
        self.cache = cache

    async def handle(self, event: StreamChanged, _: Delivery) -> None:
        self.cache.apply(event)
