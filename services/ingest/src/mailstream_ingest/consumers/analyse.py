"""`ingest.analyse`: each `MailReceived` parsed, authenticated and published as `MailAnalysed` / `DeliveryReported`.

It holds no logic of its own.

Idempotent under redelivery: analysing the same `MailReceived` again produces the same `mail_id`-keyed
`MailAnalysed` (and deterministic `DeliveryReported` ids), and inbox stores each mail once per target by
`mail_id`, so publishing again after a crash between publish and ack duplicates nothing downstream.
"""

import asyncio
import logging
import time

from pydantic_core import PydanticSerializationError

from mailstream_common.broker import Broker, Delivery
from mailstream_common.contracts import Event, MailReceived
from mailstream_common.contracts.mail import AuthenticationResult

from .. import metrics
from ..analysis import analyse, from_domain, parse, scrubbed
from ..dns_checks import Authenticator

log = logging.getLogger(__name__)


class AnalyseConsumer:
    def __init__(self, broker: Broker, authenticator: Authenticator | None) -> None:
        self.broker = broker
        self.authenticator = authenticator

    async def handle(self, received: MailReceived, delivery: Delivery) -> None:
        started = time.perf_counter()
        # Parsing a large mail is CPU work: a worker thread keeps the SMTP sessions of this loop responsive.
        parsed = await asyncio.to_thread(parse, received)
        authentication = AuthenticationResult()
        # Imported history is not authenticated: today's DNS says nothing about a mail of years ago.
        if received.targets and self.authenticator is not None and not received.imported:
            authentication = await self.authenticator.authenticate(
                received.raw,
                client_ip=received.envelope.client_ip,
                mail_from=received.envelope.mail_from,
                helo=received.envelope.helo,
                from_domain=from_domain(parsed),
            )
            for method in ("spf", "dkim", "dmarc"):
                metrics.AUTH_RESULTS.labels(method, getattr(authentication, method)).inc()
        outcome = await asyncio.to_thread(analyse, received, parsed, authentication)
        if outcome.analysed is not None:
            await self._publish(outcome.analysed, received.mail_id)
        for report in outcome.delivery_reports:
            await self._publish(report, received.mail_id)
        metrics.ANALYSED.labels("warnings" if parsed.warnings else "clean").inc()
        log.info(
            "mail analysed",
            extra={
                "mail_id": received.mail_id,
                "attempt": delivery.attempt,
                "targets": len(received.targets),
                "forwarded_by": outcome.analysed.forwarded.detected_by
                if outcome.analysed and outcome.analysed.forwarded
                else None,
                "bounces": len(outcome.delivery_reports),
                "warnings": len(parsed.warnings),
                "auth": authentication.header,
                "elapsed_ms": round((time.perf_counter() - started) * 1000, 1),
            },
        )

    async def _publish(self, event: Event, mail_id: str) -> None:
        try:
            await self.broker.publish(event, correlation_id=mail_id)
        except PydanticSerializationError:
            log.warning("undecodable text replaced before publishing", extra={"mail_id": mail_id})
            await self.broker.publish(scrubbed(event), correlation_id=mail_id)
