"""Fixtures of the sender tests: a recording relay, a domains-service stand-in with a DKIM key, a DNS server
publishing that key, and an in-process sender consuming a private queue of the real broker."""

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from uuid import uuid4

import aio_pika
import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from pymongo.asynchronous.database import AsyncDatabase

from mailstream_common import topology
from mailstream_common.broker import HEADER_EVENT, HEADER_SCHEMA_VERSION, Broker
from mailstream_common.contracts import DeliveryReported, ReplyRequested
from mailstream_common.mongo import ensure_indexes
from mailstream_sender.caches import SuppressionCache, stream_cache
from mailstream_sender.consumers.replies import RepliesConsumer
from mailstream_sender.repositories import INDEXES, stream_settings
from mailstream_sender.repositories.deliveries import Deliveries
from mailstream_sender.repositories.mails import Mails
from mailstream_sender.repositories.suppressions import Suppressions
from mailstream_sender.sending import ReplySender, SenderPolicy
from mailstream_sender.signing_keys import SigningKeyCache
from mailstream_sender.smtp_relay import RelayConfig, SmtpRelay
from tests.sender.dkim_verifiers import DkimDns, dkim_txt_record
from tests.sender.domains_stub import DomainKey, DomainsStub
from tests.support.service_tokens import SENDER_TOKEN, VERP_SECRET
from tests.support.smtp_sink import RecordingSink

TOKEN = SENDER_TOKEN  # the sender's own credential towards domains
VERP = VERP_SECRET
BOUNCE_DOMAIN = "bounces.mailstream.test"
ACME_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
_queue_numbers = itertools.count()


@pytest.fixture(scope="module")
def dkim_dns() -> Iterator[DkimDns]:
    server = DkimDns({"ms1._domainkey.acme.test": dkim_txt_record(ACME_KEY.public_key())}).start()
    yield server
    server.stop()


@pytest.fixture
def domains() -> Iterator[DomainsStub]:
    stub = DomainsStub(TOKEN).start()
    yield stub
    stub.stop()


@pytest.fixture
def relay() -> Iterator[RecordingSink]:
    sink = RecordingSink().start()
    yield sink
    sink.stop()


async def add_stream(db: AsyncDatabase, account_id: str, *, allow_agent_send: bool = True, **fields) -> dict:
    doc = {
        "_id": uuid4().hex,
        "account_id": account_id,
        "topic_id": uuid4().hex,
        "address": "support@acme.test",
        "display_name": "Acme Support",
        "allow_agent_send": allow_agent_send,
        "forwarding_address": f"{uuid4().hex}@in.mailstream.test",
        "status": "receiving",
        "deleted": False,
        **fields,
    }
    # The stream as sender knows it: a document of its own projection (as `stream.changed` leaves it).
    await db[stream_settings.COLLECTION].insert_one({**stream_settings_doc(doc), "version": 1})
    return doc


def stream_settings_doc(stream: dict) -> dict:
    keep = ("_id", "account_id", "topic_id", "address", "display_name", "allow_agent_send", "deleted")
    return {key: stream[key] for key in keep}


def reply_command(account_id: str, stream_id: str, **overrides) -> ReplyRequested:
    message_id = uuid4().hex
    fields = {
        "account_id": account_id,
        "stream_id": stream_id,
        "conversation_id": uuid4().hex,
        "message_id": message_id,
        "message_id_header": f"<{message_id}@in.mailstream.test>",
        "from": {"name": "Acme", "address": "support@acme.test"},
        "to": [{"name": "Kana Customer", "address": "kana@example.net"}],
        "subject": "My order has not arrived",
        "in_reply_to": "<original-1@mail.example.net>",
        "references": ["<original-1@mail.example.net>"],
        "text": "Sorry! It ships today.",
        "requested_by": "agent:k1",
    }
    fields.update(overrides)
    return ReplyRequested.model_validate(fields)


@dataclass
class InProcessSender:
    """`ReplySender` consuming a private queue (with its own retry tiers) of the real broker; reports are kept."""

    broker: Broker
    spec: topology.QueueSpec
    sender: ReplySender
    reports: list[DeliveryReported] = field(default_factory=list)

    async def send(self, command: ReplyRequested) -> None:
        """Put a command on the private queue exactly as `Broker.publish` would (body and headers)."""
        channel = await self.broker.connection.channel()
        try:
            await channel.default_exchange.publish(
                aio_pika.Message(
                    body=command.model_dump_json(by_alias=True).encode(),
                    content_type="application/json",
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    message_id=command.event_id,
                    headers={HEADER_EVENT: command.event_name, HEADER_SCHEMA_VERSION: command.schema_version},
                ),
                routing_key=self.spec.name,
            )
        finally:
            await channel.close()

    def reports_for(self, message_id: str) -> list[DeliveryReported]:
        return [r for r in self.reports if r.message_id == message_id]

    def final_report(self, message_id: str) -> DeliveryReported | None:
        return next((r for r in self.reports_for(message_id) if r.status in ("sent", "failed")), None)


@pytest.fixture
async def sender_factory(broker: Broker, mongo_db: AsyncDatabase, relay: RecordingSink, domains: DomainsStub):
    """Build and start an in-process sender; its caches are those of the service (the default lifetimes)."""
    await ensure_indexes(mongo_db, INDEXES)
    made: list[tuple[InProcessSender, SmtpRelay, httpx.AsyncClient]] = []

    async def make(
        *,
        max_age_seconds: float = 600,
        relay_port: int | None = None,
        suppression_cache_seconds: float = 5.0,
        retention_hours: float = 72,
    ) -> InProcessSender:
        spec = topology.QueueSpec(f"tests.sender.replies.{next(_queue_numbers)}.{uuid4().hex[:6]}", (), (1, 2), 10)
        http = httpx.AsyncClient(timeout=5)
        smtp = SmtpRelay(RelayConfig("127.0.0.1", relay_port or relay.port, timeout=5, pool_size=2))
        harness = InProcessSender(broker, spec, None)  # type: ignore[arg-type]

        async def capture(report: DeliveryReported) -> None:
            harness.reports.append(report)

        harness.sender = ReplySender(
            Deliveries(mongo_db),
            Mails(mongo_db),
            capture,
            smtp,
            SigningKeyCache(http, domains.url, TOKEN),
            SenderPolicy(
                BOUNCE_DOMAIN,
                VERP.encode(),
                max_age_seconds,
                spec.max_attempts,
                retry_base_seconds=0.5,
                retention_hours=retention_hours,
                retry_delays=spec.retry_delays,
            ),
            streams=stream_cache(stream_settings.StreamSettings(mongo_db), ttl_seconds=60),
            suppressions=SuppressionCache(Suppressions(mongo_db), ttl_seconds=suppression_cache_seconds),
        )
        broker.consume(spec, RepliesConsumer(harness.sender).handle, ReplyRequested, prefetch=8)
        await broker.start()
        made.append((harness, smtp, http))
        return harness

    yield make
    await broker.close(grace=5)
    for _harness, smtp, http in made:
        await smtp.close()
        await http.aclose()
    cleanup = Broker(broker._url, service="tests-cleanup")
    await cleanup.connect()
    channel = await cleanup.connection.channel()
    for harness, _, _ in made:
        spec = harness.spec
        for name in [spec.name, spec.dead_letter_queue]:  # the retry tiers are shared by every queue
            await channel.queue_delete(name)
    await cleanup.close()


@pytest.fixture
def acme_key(domains: DomainsStub) -> DomainKey:
    """acme.test has a verified key (selector ms1) for the test account."""
    key = DomainKey("acme.test", "acc" + uuid4().hex[:29], "ms1", ACME_KEY)
    domains.keys["acme.test"] = key
    return key
