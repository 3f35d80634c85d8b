"""`sender.stream_settings`: `stream.changed` feeds the projection; a redelivered or older event changes nothing."""

import pytest

from mailstream_common.broker import Delivery
from mailstream_common.contracts import StreamChanged
from mailstream_sender.consumers.stream_settings import StreamSettingsConsumer
from mailstream_sender.repositories.stream_settings import StreamSettings

pytestmark = pytest.mark.integration

DELIVERY = Delivery(attempt=1, first_seen=0.0, redelivered=False, queue="sender.stream_settings")


def changed(version: int, *, allow: bool = True, deleted: bool = False) -> StreamChanged:
    return StreamChanged(
        change="updated", version=version, account_id="a1", topic_id="t1", stream_id="s1", address="Support@Acme.test",
        display_name="Acme", forwarding_address="f@in.test", allow_agent_send=allow, deleted=deleted,
    )  # fmt: skip


async def test_events_are_applied_in_version_order_only(mongo_db):
    projection = StreamSettings(mongo_db)
    consumer = StreamSettingsConsumer(projection)
    await consumer.handle(changed(2, allow=False), DELIVERY)
    await consumer.handle(changed(2, allow=False), DELIVERY)
    await consumer.handle(changed(1, allow=True), DELIVERY)
    record = await projection.get("s1")
    assert (record.allow_agent_send, record.version, record.address) == (False, 2, "support@acme.test")
    await consumer.handle(changed(3, deleted=True), DELIVERY)
    assert (await projection.get("s1")).deleted is True
