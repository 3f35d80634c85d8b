"""`ingest.stream_routes`: `stream.changed` into the `stream_routes` projection.

The queue is durable and shared by the SMTP replicas, so nothing published while they were all down is lost.
Idempotent, and an older event never overwrites a newer one (the repository applies versions).
"""

from mailstream_common.broker import Delivery
from mailstream_common.contracts import StreamChanged

from ..repositories.stream_routes import StreamRoutes


class StreamRoutesConsumer:
    def __init__(self, routes: StreamRoutes) -> None:
        self.routes = routes

    async def handle(self, event: StreamChanged, _: Delivery) -> None:
        await self.routes.apply(event)
