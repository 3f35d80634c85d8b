"""Consumer of `sender.stream_settings` (shared by the replicas): `stream.changed` feeds the projection."""

from mailstream_common.broker import Delivery
from mailstream_common.contracts import StreamChanged

from ..repositories.stream_settings import StreamSettings


class StreamSettingsConsumer:
    def __init__(self, settings: StreamSettings) -> None:
        self.settings = settings

    async def handle(self, event: StreamChanged, _: Delivery) -> None:
        await self.settings.apply(event)
