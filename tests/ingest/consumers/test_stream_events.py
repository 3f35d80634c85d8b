"""The replica's stream events: a new stream is accepted as soon as its event arrives, and refused once deleted."""

import pytest

from mailstream_common.broker import Broker
from mailstream_common.contracts import StreamChanged
from mailstream_ingest.consumers.stream_events import StreamEventsConsumer
from mailstream_ingest.recipients import Route, StreamCache
from tests.ingest.conftest import INBOUND_DOMAIN, add_stream, run_ingest
from tests.ingest.smtp_client import send

pytestmark = pytest.mark.integration

SIMPLE = b"From: Jane <jane@customer.example>\r\nTo: support@acme.example\r\nSubject: hi\r\n\r\nHello\r\n"


async def test_new_stream_is_accepted_as_soon_as_its_event_arrives_and_refused_once_deleted(vhost, mongo_db, backends):
    async with run_ingest(
        vhost[1], mongo_db, backends.mongodb_uri, INGEST_ROLE="smtp", INGEST_NEGATIVE_CACHE_SECONDS=600
    ) as running:
        address = f"fwd-new-stream@{INBOUND_DOMAIN}"
        before = await send(running.smtp_port, "a@b.example", [address], SIMPLE)
        assert before.rcpt[0][0] == 550  # and now cached as absent for 10 minutes
        stream = await add_stream(mongo_db)
        await mongo_db["stream_routes"].update_one({"_id": stream["_id"]}, {"$set": {"forwarding_address": address}})
        event = StreamChanged(
            change="created", version=1, account_id=stream["account_id"], topic_id=stream["topic_id"],
            stream_id=stream["_id"], address=stream["address"], forwarding_address=address, allow_agent_send=True,
        )  # fmt: skip
        publisher = Broker(vhost[1], service="tests")
        await publisher.connect()
        try:
            await publisher.publish(event)

            async def accepted():
                return (await send(running.smtp_port, "a@b.example", [address], SIMPLE)).rcpt[0][0] == 250

            from tests.support.waiting import wait_for

            await wait_for(accepted, timeout=10, what="RCPT accepted after stream.changed")
            await mongo_db["stream_routes"].update_one({"_id": stream["_id"]}, {"$set": {"live": False}})
            await publisher.publish(event.model_copy(update={"change": "deleted", "deleted": True, "version": 2}))

            async def refused():
                return (await send(running.smtp_port, "a@b.example", [address], SIMPLE)).rcpt[0][0] == 550

            await wait_for(refused, timeout=10, what="RCPT refused after deletion")
        finally:
            await publisher.close()


async def test_each_event_is_applied_to_the_replica_cache_at_once():
    async def nothing_stored(address: str) -> Route | None:
        return None

    cache = StreamCache(nothing_stored, positive_ttl=60, negative_ttl=5)
    consumer = StreamEventsConsumer(cache)
    event = StreamChanged(
        change="created", version=1, account_id="a1", topic_id="t1", stream_id="s1",
        address="support@acme.example", forwarding_address="Fwd@In.Example", allow_agent_send=True,
    )  # fmt: skip
    await consumer.handle(event, None)
    found = await cache.find("fwd@in.example")
    assert found is not None and found.stream_id == "s1"
    await consumer.handle(event.model_copy(update={"version": 2, "deleted": True, "change": "deleted"}), None)
    assert await cache.find("fwd@in.example") is None
