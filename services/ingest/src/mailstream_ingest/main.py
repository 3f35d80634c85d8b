"""Wiring only: settings, logging, Mongo, broker, SMTP front door, consumers, ops server, shutdown."""

import asyncio
import logging
import uuid
from collections.abc import Callable

import uvloop

from mailstream_common import mongo, projection, service, topology
from mailstream_common.broker import Broker
from mailstream_common.contracts import MailReceived, StreamChanged
from mailstream_common.erasure import consume_data_requests, nothing_kept
from mailstream_common.ops import OpsServer

from . import repositories
from .backlog import BacklogGate, QueueDepths, watch_backlog
from .consumers.analyse import AnalyseConsumer
from .consumers.stream_events import StreamEventsConsumer
from .consumers.stream_routes import StreamRoutesConsumer
from .dns_checks import Authenticator, make_resolver
from .recipients import RecipientDirectory, StreamCache
from .repositories.stream_routes import StreamRoutes
from .settings import IngestSettings
from .smtp.handler import IngestHandler
from .smtp.server import SmtpFrontDoor, tls_context

log = logging.getLogger(__name__)

PUBLISHED_QUEUES = (topology.INGEST_ANALYSE, topology.INBOX_STORE, topology.INBOX_DELIVERY, topology.SENDER_BOUNCES)


async def main(stop: asyncio.Event, settings: IngestSettings | None = None) -> None:
    settings = settings or IngestSettings()
    broker = Broker(
        settings.amqp_url.get_secret_value(), service="ingest", confirm_timeout=settings.confirm_timeout_seconds
    )
    await broker.connect()
    await broker.declare(*PUBLISHED_QUEUES)  # nothing ingest publishes may be unroutable

    mongo_client = None
    front_door: SmtpFrontDoor | None = None
    authenticator: Authenticator | None = None
    checks: dict = {"broker": broker.is_ready}
    routes: StreamRoutes | None = None
    background: list[asyncio.Task] = []

    if settings.role in ("all", "smtp"):
        mongo_client = mongo.create_client(
            settings.mongodb_uri.get_secret_value(), app_name="mailstream-ingest", settings=settings
        )
        db = mongo_client[settings.mongodb_database]
        await repositories.ensure_indexes(db)
        routes = StreamRoutes(db)
        # The projection (durable queue shared by the SMTP replicas) and this replica's cache (its own queue).
        broker.consume(
            topology.INGEST_STREAM_ROUTES,
            StreamRoutesConsumer(routes).handle,
            StreamChanged,
            prefetch=settings.consumer_prefetch,
        )
        cache = StreamCache(
            routes.find,
            positive_ttl=settings.positive_cache_seconds,
            negative_ttl=settings.negative_cache_seconds,
        )
        broker.consume(
            topology.replica_queue("ingest", uuid.uuid4().hex, topology.INGEST_STREAM_EVENTS),
            StreamEventsConsumer(cache).handle,
            StreamChanged,
        )
        directory = RecipientDirectory(
            cache,
            verp_secret=settings.verp_secret.get_secret_value().encode(),
            bounce_domain=settings.effective_bounce_domain,
        )

        async def publish(event: MailReceived) -> None:
            if not broker.is_ready():
                raise ConnectionError("broker connection is down")
            await broker.publish(event, correlation_id=event.mail_id, timeout=settings.confirm_timeout_seconds)

        # The queues between a 250 and a stored mail: what the front door watches to refuse early (backlog.py).
        backlog = BacklogGate(limit=settings.backlog_limit)
        if settings.backlog_limit > 0:
            watched = (topology.INGEST_ANALYSE.name, topology.INBOX_STORE.name)
            depths = QueueDepths(broker.connection)  # one channel for every read: a channel per read leaked (issue 12)
            background.append(
                asyncio.create_task(
                    watch_backlog(backlog, watched, depths.read, stop, interval=settings.backlog_check_seconds)
                )
            )
        front_door = SmtpFrontDoor(
            IngestHandler(directory, publish, max_recipients=settings.max_recipients, backlog=backlog),
            host=settings.smtp_host,
            port=settings.smtp_port,
            hostname=settings.effective_hostname,
            max_message_bytes=settings.max_message_bytes,
            max_line_length=settings.max_line_length,
            max_sessions=settings.max_sessions,
            timeout=settings.smtp_timeout_seconds,
            data_timeout=settings.smtp_data_timeout_seconds,
            proxy_protocol_timeout=5.0 if settings.proxy_protocol else None,
            tls_context=tls_context(settings.tls_cert_file, settings.tls_key_file),
            reuse_port=settings.smtp_reuse_port,
        )
        checks["smtp_listener"] = front_door.is_listening

    if settings.role in ("all", "analyse"):
        if settings.auth_enabled:
            authenticator = Authenticator(
                make_resolver(settings.dns_nameservers, settings.dns_timeout_seconds),
                authserv_id=settings.effective_hostname,
                dns_timeout=settings.dns_timeout_seconds,
                time_box=settings.auth_time_box_seconds,
            )
        analyse = AnalyseConsumer(broker, authenticator)
        broker.consume(topology.INGEST_ANALYSE, analyse.handle, MailReceived, prefetch=settings.consumer_prefetch)

    # Ingest keeps no mail: it passes each one on (mail.received, acknowledged by the broker) and holds only the
    # stream routes, which are the company's. Its part of an erasure or an export is to report so.
    consume_data_requests(broker, "ingest", erase=nothing_kept)

    # A projection created after streams existed catches up (see repositories/stream_routes.py); empty is judged
    # before any queued event is consumed.
    resync = routes is not None and await projection.is_empty(routes.collection)
    await broker.start()
    if resync:
        await projection.request_resync(broker, ["stream"], service="ingest")
    if front_door is not None:
        await front_door.start()
    ops = OpsServer(settings.ops_host, settings.ops_port, checks)
    await ops.start()
    log.info(
        "ingest ready",
        extra={
            "role": settings.role,
            "smtp_port": front_door.port if front_door else None,
            "event_loop": type(asyncio.get_running_loop()).__module__,  # "uvloop" or "asyncio.unix_events"
        },
    )

    await stop.wait()
    log.info("shutting down")
    if front_door is not None:
        await front_door.stop(settings.shutdown_grace_seconds)
    await asyncio.gather(*background, return_exceptions=True)  # they end with `stop`
    await broker.close(settings.shutdown_grace_seconds)
    if authenticator is not None:
        authenticator.close()
    if mongo_client is not None:
        await mongo_client.close()
    await ops.stop()


def event_loop_factory(choice: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The loop ingest runs on: uvloop by default (less CPU per SMTP session), asyncio's own on request."""
    if choice == "uvloop":
        return uvloop.new_event_loop
    return None


def cli() -> None:
    settings = IngestSettings()
    service.run(
        "ingest",
        lambda stop: main(stop, settings),
        log_level=settings.log_level,
        loop_factory=event_loop_factory(settings.event_loop),
    )
