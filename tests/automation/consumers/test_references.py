"""`automation.references`: each catalogue event lands in `known_references`, newest version wins, redelivery is
harmless."""

import time
import uuid

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from mailstream_automation.consumers.references import ReferencesConsumer
from mailstream_automation.repositories import KnownReferencesRepository
from mailstream_common.broker import Delivery
from mailstream_common.contracts import CannedResponseChanged, StreamChanged

pytestmark = pytest.mark.integration

DELIVERY = Delivery(attempt=1, first_seen=time.time(), redelivered=False, queue="automation.references")


async def test_events_are_applied_once_and_never_by_an_older_version(mongo_db: AsyncDatabase):
    known = KnownReferencesRepository(mongo_db)
    consumer = ReferencesConsumer(known)
    account, stream_id = uuid.uuid4().hex, uuid.uuid4().hex

    def stream(version: int, topic_id: str) -> StreamChanged:
        return StreamChanged(
            change="updated", version=version, account_id=account, topic_id=topic_id, stream_id=stream_id,
            address="s@acme.test", forwarding_address=f"{stream_id}@in.test", allow_agent_send=True, deleted=False,
        )  # fmt: skip

    await consumer.handle(stream(2, "t2"), DELIVERY)
    await consumer.handle(stream(2, "t2"), DELIVERY)  # redelivered
    await consumer.handle(stream(1, "t1"), DELIVERY)  # older, arriving late
    doc = await known.collection.find_one({"_id": f"stream:{stream_id}"})
    assert (doc["kind"], doc["account_id"], doc["topic_id"], doc["version"]) == ("stream", account, "t2", 2)

    canned_id = uuid.uuid4().hex
    await consumer.handle(
        CannedResponseChanged(
            change="deleted", version=3, account_id=account, canned_response_id=canned_id, deleted=True
        ),
        DELIVERY,
    )
    assert await known.live(account, [f"canned_response:{canned_id}", f"stream:{stream_id}"]) == {
        f"stream:{stream_id}": doc
    }
