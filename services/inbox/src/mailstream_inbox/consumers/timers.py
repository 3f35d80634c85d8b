"""`inbox.timers`: inbox's wake-up calls (snoozes, scheduled replies) coming down the broker's delay ladder.

A wake-up that arrives before its time goes down the ladder again (`mailstream_common.delays`); one that is due is
handed to its use case, which ignores it when the snooze or the schedule it names was cancelled or replaced, so
redeliveries and stale wake-ups change nothing.
"""

from pymongo.asynchronous.database import AsyncDatabase

from mailstream_common import delays, topology
from mailstream_common.broker import Broker, Delivery
from mailstream_common.contracts import ScheduledReplyDue, SnoozeDue, utcnow

from ..conversation_time import seconds_until
from ..use_cases import scheduled_send, snooze


def make_handler(db: AsyncDatabase, broker: Broker):
    async def handle(event: SnoozeDue | ScheduledReplyDue, delivery: Delivery) -> None:
        remaining = seconds_until(event.due_at, utcnow())
        if not delays.is_due(remaining):
            await broker.publish_delayed(event, topology.INBOX_TIMERS, remaining)
            return
        if isinstance(event, SnoozeDue):
            await snooze.wake_due(db, broker, event)
        else:
            await scheduled_send.send_due(db, broker, event)

    return handle
