"""Wiring only: settings, logging, MongoDB, the broker and its consumers, and the HTTP API in one event loop."""

import asyncio
import logging

from mailstream_common import mongo, projection, service, topology
from mailstream_common.broker import Broker
from mailstream_common.contracts import (
    CannedResponseChanged,
    MessageStored,
    StreamChanged,
    TopicChanged,
)
from mailstream_common.erasure import consume_data_requests
from mailstream_common.ops import HttpServer

from .api.app import create_app
from .consumers.evaluate import EvaluateConsumer
from .consumers.references import ReferencesConsumer
from .references import ENTITIES
from .repositories import (
    AutoRepliesRepository,
    KnownReferencesRepository,
    RulesRepository,
    RunsRepository,
    ensure_indexes,
)
from .repositories import erasure as erasure_repo
from .settings import AutomationSettings

log = logging.getLogger(__name__)

SERVICE = "automation"


async def main(stop: asyncio.Event) -> None:
    settings = AutomationSettings()
    client = mongo.create_client(settings.mongodb_uri.get_secret_value(), app_name=SERVICE, settings=settings)
    db = client[settings.mongodb_database]
    broker = Broker(settings.amqp_url.get_secret_value(), service=SERVICE)
    server: HttpServer | None = None
    try:
        await ensure_indexes(db)
        await broker.connect()
        await broker.declare(topology.INBOX_ACTIONS)  # so our commands are routable before inbox first starts
        evaluate = EvaluateConsumer(
            RulesRepository(db), RunsRepository(db), AutoRepliesRepository(db), broker, settings
        )
        broker.consume(
            topology.AUTOMATION_EVALUATE, evaluate.handle, MessageStored, prefetch=settings.consumer_prefetch
        )
        known = KnownReferencesRepository(db)  # the projection of inbox's catalogue that rule validation reads
        broker.consume(
            topology.AUTOMATION_REFERENCES,
            ReferencesConsumer(known).handle,
            (TopicChanged, StreamChanged, CannedResponseChanged),
            prefetch=settings.consumer_prefetch,
        )
        consume_data_requests(
            broker,
            SERVICE,
            erase=lambda request: erasure_repo.erase(db, request),
            export=lambda request: erasure_repo.export(db, request),
        )
        resync = await projection.is_empty(known.collection)  # judged before any queued event is consumed
        await broker.start()
        if resync:
            await projection.request_resync(broker, ENTITIES, service="automation")

        app = create_app(settings, db, {"broker": broker.is_ready, "database": lambda: mongo.ping(client)})
        server = HttpServer(app, settings.http_host, settings.http_port, lifespan="off")
        await server.start()
        log.info("automation ready", extra={"port": settings.http_port})
        await server.wait(stop)
    finally:
        log.info("shutting down")
        if server is not None:
            await server.stop()
        await broker.close(grace=settings.shutdown_grace_seconds)
        await client.close()


def cli() -> None:
    service.run(SERVICE, main, log_level=AutomationSettings().log_level)
