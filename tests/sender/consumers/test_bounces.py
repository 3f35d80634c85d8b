"""`sender.bounces`: only permanent bounces of messages this service sent count; at the threshold the address is
suppressed, and a redelivered bounce counts once."""

from uuid import uuid4

import pytest

from mailstream_common.broker import Delivery
from mailstream_common.contracts import DeliveryReported
from mailstream_common.mongo import ensure_indexes
from mailstream_sender.consumers.bounces import BounceRecorder
from mailstream_sender.repositories import INDEXES
from mailstream_sender.repositories.deliveries import Deliveries
from mailstream_sender.repositories.suppressions import Suppressions

pytestmark = pytest.mark.integration

DELIVERY = Delivery(attempt=1, first_seen=0.0, redelivered=False, queue="sender.bounces")


async def test_permanent_bounces_of_sent_messages_suppress_at_the_threshold(mongo_db):
    await ensure_indexes(mongo_db, INDEXES)
    deliveries, suppressions = Deliveries(mongo_db), Suppressions(mongo_db)
    recorder = BounceRecorder(deliveries, suppressions, threshold=2)
    account = "acct-" + uuid4().hex[:8]
    first, second = uuid4().hex, uuid4().hex
    for message_id in (first, second):
        await deliveries.begin_attempt(message_id, account, ["kana@example.net"])

    def bounce(message_id: str, **fields) -> DeliveryReported:
        return DeliveryReported(
            **{"message_id": message_id, "status": "bounced", "permanent": True, "detail": "550 no such user", **fields}
        )

    await recorder.handle(bounce(first, permanent=False), DELIVERY)  # temporary: not counted
    await recorder.handle(bounce(uuid4().hex), DELIVERY)  # never sent by us: ignored
    await recorder.handle(bounce(first), DELIVERY)
    await recorder.handle(bounce(first), DELIVERY)  # the same bounce redelivered
    assert await suppressions.get(account, "kana@example.net") is None

    await recorder.handle(bounce(second, recipient="Kana@Example.net"), DELIVERY)
    suppression = await suppressions.get(account, "kana@example.net")
    assert suppression is not None and suppression.source == "bounces" and suppression.hard_bounces == 2
