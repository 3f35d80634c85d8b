"""Wiring of the domains service: settings, Mongo, broker, HTTP app, background verifier, graceful shutdown."""

import asyncio
import logging
from datetime import timedelta

from mailstream_common import mongo, service
from mailstream_common.broker import Broker
from mailstream_common.erasure import consume_data_requests, nothing_kept
from mailstream_common.ops import HttpServer

from .api.app import create_app
from .background_checks import BackgroundVerifier
from .dns_lookup import DnsLookup
from .keys import KeyVault
from .manager import DomainManager
from .record_plan import RecordPolicy
from .repositories import INDEXES
from .repositories.domains import DomainRepository
from .settings import DomainsSettings

log = logging.getLogger(__name__)

NAME = "domains"


def build_manager(settings: DomainsSettings, repo: DomainRepository, broker: Broker) -> DomainManager:
    vault = KeyVault(
        settings.key_encryption_key.get_secret_value() if settings.key_encryption_key else None,
        settings.key_encryption_key_file,
    )
    policy = RecordPolicy(
        spf_include=settings.spf_include,
        spf_ips=tuple(settings.spf_ips),
        dmarc_rua=settings.effective_dmarc_rua,
        bounce_domain=settings.effective_bounce_domain,
        rotation_grace=timedelta(hours=settings.rotation_grace_hours),
    )
    return DomainManager(
        repo,
        vault,
        DnsLookup(settings.dns_nameservers, timeout=settings.dns_timeout_seconds),
        broker.publish,
        policy,
        ed25519=settings.ed25519,
        recheck_min_seconds=settings.recheck_min_seconds,
        recheck_max_seconds=settings.recheck_max_seconds,
        recheck_verified_seconds=settings.recheck_verified_seconds,
    )


async def main(stop: asyncio.Event, settings: DomainsSettings | None = None) -> None:
    settings = settings or DomainsSettings()
    client = mongo.create_client(settings.mongodb_uri.get_secret_value(), app_name=NAME, settings=settings)
    db = client[settings.mongodb_database]
    await mongo.ensure_indexes(db, INDEXES)
    broker = Broker(settings.amqp_url.get_secret_value(), service=NAME)
    await broker.connect()
    manager = build_manager(settings, DomainRepository(db), broker)
    app = create_app(
        manager,
        settings.service_callers,
        {"broker": broker.is_ready, "database": lambda: mongo.ping(client)},
    )
    server = HttpServer(app, settings.http_host, settings.http_port)
    await server.start()
    # Domains keeps company data only (domain names, keys, DNS verdicts): its part of an erasure or an export is
    # to report so.
    consume_data_requests(broker, NAME, erase=nothing_kept)
    await broker.start()
    verifier = BackgroundVerifier(manager, poll_seconds=settings.verifier_poll_seconds)
    verifier.start()
    log.info("listening", extra={"host": settings.http_host, "port": settings.http_port})
    try:
        await server.wait(stop)
    finally:
        log.info("shutting down")
        await verifier.stop(settings.shutdown_grace_seconds)
        await server.stop()  # uvicorn finishes in-flight requests first
        await broker.close(settings.shutdown_grace_seconds)
        await client.close()


def cli() -> None:
    settings = DomainsSettings()
    service.run(NAME, lambda stop: main(stop, settings), log_level=settings.log_level)
