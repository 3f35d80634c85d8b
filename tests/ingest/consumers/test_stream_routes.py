"""`ingest.stream_routes`: each `stream.changed` lands in the projection; a redelivery changes nothing."""

import pytest

from mailstream_common.contracts import StreamChanged
from mailstream_ingest.consumers.stream_routes import StreamRoutesConsumer
from mailstream_ingest.repositories.stream_routes import StreamRoutes

pytestmark = pytest.mark.integration


def changed(version: int, deleted: bool = False) -> StreamChanged:
    return StreamChanged(
        change="deleted" if deleted else "created", version=version, account_id="a1", topic_id="t1",
        stream_id="s1", address="support@acme.example", forwarding_address="fwd@in.example",
        allow_agent_send=True, deleted=deleted,
    )  # fmt: skip


async def test_events_and_their_redeliveries_leave_the_newest_route(mongo_db):
    routes = StreamRoutes(mongo_db)
    consumer = StreamRoutesConsumer(routes)
    for event in (changed(1), changed(2, deleted=True), changed(1), changed(2, deleted=True)):
        await consumer.handle(event, None)
    route = await routes.find("fwd@in.example")
    assert route is not None and (route.version, route.live) == (2, False)
