"""This replica's own queue: `stream.changed` reaches the projection before the stream cache is dropped."""

from mailstream_common.broker import Delivery
from mailstream_common.contracts import StreamChanged
from mailstream_sender.caches import stream_cache
from mailstream_sender.consumers.replica_events import ReplicaEvents
from mailstream_sender.repositories.stream_settings import StreamSettings


async def test_a_replica_stream_event_reaches_the_projection_before_the_cache_is_dropped(mongo_db):
    """This replica's queue may deliver `stream.changed` before the shared projection queue does: the handler
    applies it to `stream_settings` first, so the reload after the invalidation is not older than the event; an
    older event afterwards changes nothing."""

    def changed(version: int, allow: bool) -> StreamChanged:
        return StreamChanged(
            change="updated", version=version, account_id="a1", topic_id="t1", stream_id="s1",
            address="Support@Acme.test", display_name="Acme", forwarding_address="f@in.test", allow_agent_send=allow,
        )  # fmt: skip

    projection = StreamSettings(mongo_db)
    await projection.apply(changed(1, True))
    streams = stream_cache(projection, ttl_seconds=3600)
    assert (await streams.get("s1")).allow_agent_send is True
    handler = ReplicaEvents(keys=None, streams=streams, settings=projection)  # type: ignore[arg-type]
    delivery = Delivery(attempt=1, first_seen=0.0, redelivered=False, queue="sender.replica.test")
    await handler.handle(changed(2, False), delivery)
    record = await streams.get("s1")
    assert (record.allow_agent_send, record.version, record.address) == (False, 2, "support@acme.test")
    await projection.apply(changed(1, True))  # the shared queue's late copy of the older event
    assert (await projection.get("s1")).allow_agent_send is False
