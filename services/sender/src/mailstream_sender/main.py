"""Wiring only: settings, logging, Mongo, broker, the consumers, the HTTP app, and shutdown."""

import asyncio
import logging
import socket
import uuid

import httpx

from mailstream_common import mongo, projection, service, topology
from mailstream_common.broker import Broker
from mailstream_common.contracts import (
    DataErasureRequested,
    DeliveryReported,
    DomainChanged,
    ReplyRequested,
    StreamChanged,
)
from mailstream_common.erasure import consume_data_requests
from mailstream_common.ops import HttpServer

from .api.app import create_app
from .caches import SuppressionCache, stream_cache
from .consumers.bounces import BounceRecorder
from .consumers.replica_events import ReplicaEvents
from .consumers.replies import RepliesConsumer
from .consumers.stream_settings import StreamSettingsConsumer
from .repositories import INDEXES
from .repositories import erasure as erasure_repo
from .repositories.deliveries import Deliveries
from .repositories.mails import Mails
from .repositories.stream_settings import StreamSettings
from .repositories.suppressions import Suppressions
from .sending import ReplySender, SenderPolicy
from .settings import SenderSettings
from .signing_keys import SigningKeyCache
from .smtp_relay import RelayConfig, SmtpRelay

log = logging.getLogger(__name__)


def relay_config(settings: SenderSettings) -> RelayConfig:
    return RelayConfig(
        host=settings.smtp_host,
        port=settings.smtp_port,
        tls=settings.smtp_tls,
        verify_certificates=settings.smtp_tls_verify,
        username=settings.smtp_username,
        password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
        timeout=settings.smtp_timeout_seconds,
        pool_size=settings.smtp_pool_size,
        per_destination_concurrency=settings.per_destination_concurrency,
        # Not socket.getfqdn(): it waits on DNS, which in a locked-down pod may never answer.
        helo_name=settings.helo_name or socket.gethostname(),
    )


async def main(stop: asyncio.Event) -> None:
    settings = SenderSettings()
    client = mongo.create_client(
        settings.mongodb_uri.get_secret_value(), app_name="mailstream-sender", settings=settings
    )
    db = client[settings.mongodb_database]
    await mongo.ensure_indexes(db, INDEXES)

    broker = Broker(settings.amqp_url.get_secret_value(), service="sender")
    await broker.connect()
    await broker.declare(topology.INBOX_DELIVERY)  # our reports must be routable even before inbox starts

    http = httpx.AsyncClient(timeout=10.0)
    keys = SigningKeyCache(
        http, settings.domains_url, settings.sender_token.get_secret_value(), settings.signing_key_cache_seconds
    )
    relay = SmtpRelay(relay_config(settings))
    spec = topology.SENDER_REPLIES
    deliveries, suppressions = Deliveries(db), Suppressions(db)
    suppressions.hash_secret = settings.verp_secret.get_secret_value().encode()
    stream_settings = StreamSettings(db)  # the projection of inbox's streams the cache reads
    streams = stream_cache(stream_settings, ttl_seconds=settings.stream_cache_seconds)
    # One Suppressions object for the API, the bounce consumer and the guard's cache: its writes drop the cache.
    suppression_cache = SuppressionCache(suppressions, ttl_seconds=settings.suppression_cache_seconds)
    replies = ReplySender(
        deliveries,
        Mails(db),
        broker.publish,
        relay,
        keys,
        SenderPolicy(
            bounce_domain=settings.effective_bounce_domain,
            bounce_secret=settings.verp_secret.get_secret_value().encode(),
            max_age_seconds=settings.max_age_seconds,
            max_attempts=spec.max_attempts,
            retry_base_seconds=settings.retry_base_seconds,
            retention_hours=settings.deliveries_retention_hours,
            retry_delays=spec.retry_delays,
        ),
        streams=streams,
        suppressions=suppression_cache,
    )
    bounces = BounceRecorder(deliveries, suppressions, settings.suppress_after_hard_bounces)
    broker.consume(spec, RepliesConsumer(replies).handle, ReplyRequested, prefetch=settings.consumer_prefetch)
    broker.consume(topology.SENDER_BOUNCES, bounces.handle, DeliveryReported, prefetch=settings.consumer_prefetch)
    replica_queue = topology.replica_queue("sender", uuid.uuid4().hex, topology.SENDER_REPLICA_EVENTS)
    broker.consume(replica_queue, ReplicaEvents(keys, streams, stream_settings).handle, (DomainChanged, StreamChanged))
    broker.consume(
        topology.SENDER_STREAM_SETTINGS,
        StreamSettingsConsumer(stream_settings).handle,
        StreamChanged,
        prefetch=settings.consumer_prefetch,
    )

    async def erase(request: DataErasureRequested) -> dict[str, int]:
        counts = await erasure_repo.erase(db, request, hash_secret=suppressions.hash_secret or b"")
        suppressions.on_change_for(request.account_id)  # this replica's guard forgets the account's list
        return counts

    consume_data_requests(broker, "sender", erase=erase, export=lambda request: erasure_repo.export(db, request))

    async def database_ready() -> bool:
        return await mongo.ping(client)

    app = create_app(suppressions, settings.service_callers, {"broker": broker.is_ready, "database": database_ready})
    server = HttpServer(app, settings.http_host, settings.http_port)
    await server.start()  # HTTP first: a port that is taken stops the process before it takes any work
    resync = await projection.is_empty(stream_settings.collection)  # judged before any queued event is consumed
    await broker.start()
    if resync:
        await projection.request_resync(broker, ["stream"], service="sender")
    log.info("sender ready", extra={"relay": f"{settings.smtp_host}:{settings.smtp_port}", "http": settings.http_port})
    try:
        await server.wait(stop)
    finally:
        await broker.close(settings.shutdown_grace_seconds)  # finish or requeue in-flight commands
        await server.stop()
        await relay.close()
        await http.aclose()
        await client.close()


def cli() -> None:
    settings = SenderSettings()
    service.run("sender", main, log_level=settings.log_level)
