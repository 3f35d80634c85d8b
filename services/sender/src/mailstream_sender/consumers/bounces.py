"""Consumer of `sender.bounces`: hard bounces feed the per-account suppression list."""

import logging

from mailstream_common.broker import Delivery
from mailstream_common.contracts import DeliveryReported

from ..repositories.deliveries import Deliveries
from ..repositories.suppressions import Suppressions

log = logging.getLogger(__name__)


class BounceRecorder:
    """Consumer of `sender.bounces`: every `delivery.reported` arrives here; only permanent bounces count."""

    def __init__(self, deliveries: Deliveries, suppressions: Suppressions, threshold: int) -> None:
        self.deliveries = deliveries
        self.suppressions = suppressions
        self.threshold = threshold

    async def handle(self, report: DeliveryReported, delivery: Delivery) -> None:
        if report.status != "bounced" or not report.permanent:
            return
        sent = await self.deliveries.sent_to(report.message_id)
        if sent is None:
            log.warning("bounce for a message sender never sent", extra={"message_id": report.message_id})
            return
        account_id, sent_recipients = sent
        recipients = [report.recipient.lower()] if report.recipient else sent_recipients
        for address in recipients:
            suppression = await self.suppressions.record_hard_bounce(
                account_id, address, report.message_id, report.detail, self.threshold
            )
            if suppression is not None:
                log.info("address suppressed after hard bounces", extra={"hard_bounces": suppression.hard_bounces})
