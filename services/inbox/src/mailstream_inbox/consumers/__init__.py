"""The inbox's queue consumers: store analysed mail, apply delivery reports, apply automation's actions, and answer
projection resync requests (`mailstream_inbox.catalogue`)."""

from datetime import timedelta

from pymongo.asynchronous.database import AsyncDatabase

from mailstream_common import topology
from mailstream_common.broker import Broker, Delivery
from mailstream_common.contracts import (
    ConversationActionsRequested,
    DataErasurePartDone,
    DeliveryReported,
    MailAnalysed,
    ProjectionResyncRequested,
    ScheduledReplyDue,
    SnoozeDue,
)
from mailstream_common.erasure import consume_data_requests

from .. import catalogue
from ..settings import InboxSettings
from ..use_cases import data_requests
from . import actions, delivery, store, timers


def register(broker: Broker, db: AsyncDatabase, settings: InboxSettings) -> None:
    """Register the consumers on `broker` (they start with `broker.start()`)."""
    prefetch = settings.consumer_prefetch
    broker.consume(topology.INBOX_STORE, store.make_handler(db, broker, settings), MailAnalysed, prefetch=prefetch)
    broker.consume(topology.INBOX_DELIVERY, delivery.make_handler(db, broker), DeliveryReported, prefetch=prefetch)
    broker.consume(
        topology.INBOX_ACTIONS,
        actions.make_handler(db, broker, settings),
        ConversationActionsRequested,
        prefetch=prefetch,
    )
    broker.consume(
        topology.INBOX_RESYNC, catalogue.make_resync_handler(db, broker), ProjectionResyncRequested, prefetch=1
    )
    broker.consume(
        topology.INBOX_TIMERS, timers.make_handler(db, broker), (SnoozeDue, ScheduledReplyDue), prefetch=prefetch
    )
    # Data protection: inbox's own part of an erasure or export, and every service's report of its part.
    consume_data_requests(
        broker,
        "inbox",
        erase=lambda request: data_requests.erase_inbox_part(db, request),
        export=lambda request: data_requests.export_inbox_part(db, request),
    )
    secret = data_requests.hash_secret(settings)
    export_ttl = timedelta(hours=settings.export_ttl_hours)

    async def record_part(report: DataErasurePartDone, delivery: Delivery) -> None:
        await data_requests.record_part(db, report, secret=secret, export_ttl=export_ttl)

    broker.consume(topology.INBOX_DATA_REQUEST_PARTS, record_part, DataErasurePartDone, prefetch=prefetch)
