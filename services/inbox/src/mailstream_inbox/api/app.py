"""The gateway's FastAPI application: every router, the ops routes, and the process-wide clients in its lifespan.

`create_app(settings)` is all a test or `main.py` needs. The lifespan opens MongoDB (and creates indexes), connects
the broker, declares the queues the inbox publishes to (so no publish is unroutable), registers the store/actions/
delivery consumers (`INBOX_ROLE` all|worker) and the replica-local live-update queue (all|api), then starts them.
"""

import asyncio
import contextlib
import functools
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response

from mailstream_common import asyncapi, mongo, topology
from mailstream_common.broker import Broker, Delivery
from mailstream_common.contracts import ApiKeyRevoked, Event
from mailstream_common.http_apps import install_allow_header
from mailstream_common.ops import ops_routes
from mailstream_common.periodic import run_every

from .. import catalogue, consumers, outbox
from ..consumers.dead_letters import DeadLetterKeeper
from ..live_hub import LiveHub
from ..live_journal import LiveJournal
from ..repositories import ensure_indexes
from ..security import KeyCache
from ..settings import InboxSettings
from ..use_cases import data_requests as data_requests_use_case
from ..webhooks import repositories as webhooks_repo
from ..webhooks.signing import SecretBox
from .console import install_console
from .errors import install_error_handlers
from .middleware import CorrelationAndMetrics, RequestSizeLimit
from .routes import (
    api_keys,
    attachments,
    canned_responses,
    conversation_time,
    conversations,
    data_requests,
    dead_letters,
    email_template,
    events,
    imports,
    messages,
    proxy,
    reply_recipients,
    streams,
    topics,
    webhooks,
)

log = logging.getLogger(__name__)

SERVICE = "inbox"

# Routers in inclusion order; the proxy's catch-all paths come last.
ROUTERS = (
    api_keys.router,
    topics.router,
    streams.router,
    conversations.router,
    conversation_time.router,
    messages.router,
    canned_responses.router,
    email_template.router,
    events.router,
    proxy.router,
    imports.router,
    attachments.router,
    reply_recipients.router,
    dead_letters.router,
    webhooks.router,
    data_requests.router,
)

# Broadcast events whose only consumers are replica-local queues (ingest's RCPT cache, gateways' live updates):
# with no such process running they would be unroutable, and the broker would refuse the publish. This bounded
# journal queue keeps them routable and holds the latest few for inspection; nobody consumes it.
BROADCAST_JOURNAL_QUEUE = "inbox.broadcast.journal"
BROADCAST_JOURNAL_EVENTS = (
    "stream.changed",
    "topic.changed",
    "canned_response.changed",
    "conversation.changed",
    "message.delivery_changed",
    "api_key.revoked",
    "conversation.timeline_recorded",
    "webhook.subscription_disabled",
)

OPENAPI_DESCRIPTION = """Mailstream: email as a stream for customer-service inboxes.

Authenticate with `Authorization: Bearer <api_key>` (create the first admin key with `mailstream accounts create`).
Another account's ids answer 404 exactly like missing ones; an agent key calling an admin operation gets 403.
Lists are `{"items": [...], "next_cursor": ...}` with `?limit=` (default 50, max 200) and `?cursor=`.
Validation errors are 422 and name the field in `detail[].loc`.
"""


async def _declare_published_queues(broker: Broker) -> None:
    await broker.declare(
        topology.SENDER_REPLIES,  # reply.requested
        topology.AUTOMATION_EVALUATE,  # message.stored
        topology.INBOX_ACTIONS,
        topology.INBOX_STORE,
        topology.INBOX_DELIVERY,
        topology.INBOX_TIMERS,  # the delay ladder the API puts snoozes and scheduled replies on
        topology.WEBHOOKS_ATTEMPTS,  # replays of webhook deliveries
    )
    channel = await broker.connection.channel()
    try:
        exchange = await topology.declare_exchange(channel)
        journal = await channel.declare_queue(
            BROADCAST_JOURNAL_QUEUE,
            durable=True,
            arguments={"x-max-length": 1000, "x-overflow": "drop-head", "x-message-ttl": 24 * 3600 * 1000},
        )
        for key in BROADCAST_JOURNAL_EVENTS:
            await journal.bind(exchange, routing_key=key)
    finally:
        await channel.close()


def _replica_handler(app: FastAPI):
    """The replica queue's consumer: live events to the hub, key revocations to the key cache (and open streams)."""

    async def handle(event: Event, delivery: Delivery) -> None:
        if isinstance(event, ApiKeyRevoked):
            app.state.key_cache.forget_key(event.key_id)
            closed = app.state.live.close_key(event.key_id)
            log.info("revoked API key forgotten", extra={"key_id": event.key_id, "streams_closed": closed})
            return
        await app.state.live.handle(event, delivery)

    return handle


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: InboxSettings = app.state.settings
    client = mongo.create_client(
        settings.mongodb_uri.get_secret_value(), app_name="mailstream-inbox", settings=settings
    )
    app.state.mongo_client = client
    app.state.db = client[settings.mongodb_database]
    broker = Broker(settings.amqp_url.get_secret_value(), service=SERVICE)
    app.state.broker = broker
    app.state.http = httpx.AsyncClient(timeout=httpx.Timeout(settings.proxy_timeout_seconds, connect=5.0))
    journal = LiveJournal(
        app.state.db,
        retention_seconds=settings.events_retention_seconds,
        replay_max=settings.events_replay_max,
        memory_max=settings.events_memory_max,
        receiving=broker.is_ready,
    )
    keeper: DeadLetterKeeper | None = None
    journal_task: asyncio.Task[None] | None = None
    relay_tasks: list[asyncio.Task[None]] = []
    relay_stop = asyncio.Event()
    try:
        await ensure_indexes(app.state.db)
        await mongo.ensure_indexes(app.state.db, webhooks_repo.INDEXES)
        await broker.connect()
        # While the connection is down the replica queue is gone: events published then never reach this replica.
        broker.connection.close_callbacks.add(lambda *_: journal.receiving_interrupted())
        broker.connection.reconnect_callbacks.add(lambda *_: journal.receiving_resumed())
        await _declare_published_queues(broker)
        if settings.runs_consumers:
            consumers.register(broker, app.state.db, settings)
        if settings.serves_http:
            app.state.live.journal = journal
            replica_queue = topology.replica_queue("inbox", uuid.uuid4().hex, topology.GATEWAY_REPLICA_EVENTS)
            broker.consume(replica_queue, _replica_handler(app), topology.GATEWAY_REPLICA_EVENTS, prefetch=256)
        await broker.start()
        if settings.runs_consumers:
            keeper = DeadLetterKeeper(app.state.db, broker, settings.dead_letter_queues)
            await keeper.start()
            relay_tasks.append(
                asyncio.create_task(
                    run_every(settings.dead_letter_gauge_seconds, relay_stop, keeper.refresh_gauge, name="dead letters")
                )
            )
            # Outbox relays: what a route stored but could not publish (catalogue.py, outbox.py). Each waits one
            # interval before taking a document, so the route has had its chance.
            relays = (
                ("catalogue relay", settings.catalogue_relay_seconds, catalogue.relay_pending),
                ("reply relay", settings.reply_relay_seconds, outbox.relay_stranded_replies),
                ("data request relay", settings.data_request_relay_seconds, data_requests_use_case.relay_unpublished),
            )
            for name, seconds, relay in relays:
                chore = functools.partial(relay, app.state.db, broker, older_than_seconds=seconds)
                relay_tasks.append(asyncio.create_task(run_every(seconds, relay_stop, chore, name=name)))
            retention = functools.partial(data_requests_use_case.run_retention, app.state.db, broker)
            relay_tasks.append(
                asyncio.create_task(run_every(settings.retention_run_seconds, relay_stop, retention, name="retention"))
            )
        if settings.serves_http:
            await journal.open()  # the live queue is bound: from now on this replica journals every live event
            journal_task = asyncio.create_task(journal.run())
        app.state.started = True
        log.info("inbox ready", extra={"role": settings.role})
        yield
    finally:
        app.state.started = False
        app.state.live.close()
        relay_stop.set()
        for chore in relay_tasks:
            chore.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await chore
        if journal_task is not None:
            journal_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await journal_task
        if keeper is not None:
            await keeper.stop()
        await broker.close(settings.shutdown_grace_seconds)
        if journal_task is not None:
            await journal.close()  # after the queue is gone: nothing later is journaled by this replica
        await app.state.http.aclose()
        await client.close()


def _install_ops(app: FastAPI) -> None:
    async def database_ready() -> bool:
        client = getattr(app.state, "mongo_client", None)
        return client is not None and await mongo.ping(client)

    def broker_ready() -> bool:
        broker = getattr(app.state, "broker", None)
        return bool(getattr(app.state, "started", False)) and broker is not None and broker.is_ready()

    app.router.routes.extend(ops_routes({"database": database_ready, "broker": broker_ready}))


def _install_openapi(app: FastAPI) -> None:
    """`/openapi.json` is the gateway's own schema merged with those of the services it proxies (see proxy.py)."""

    @app.get("/openapi.json", include_in_schema=False)
    async def openapi_document(request: Request) -> JSONResponse:
        return JSONResponse(await proxy.merged_openapi(request.app))

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="Mailstream API")

    # The broker contract (AsyncAPI 3.0), built from the contracts: the same document as docs/asyncapi.json.
    @app.get("/asyncapi.json", include_in_schema=False)
    async def asyncapi_document() -> Response:
        return Response(asyncapi.document_json(), media_type="application/json")


def create_app(settings: InboxSettings | None = None) -> FastAPI:
    settings = settings or InboxSettings()
    app = FastAPI(
        title="Mailstream API",
        version="1.0.0",
        description=OPENAPI_DESCRIPTION,
        lifespan=lifespan,
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.live = LiveHub(settings.sse_client_queue_size, settings.sse_max_clients_per_account)
    app.state.key_cache = KeyCache(settings.api_key_cache_seconds)
    key = settings.webhooks_secret_encryption_key
    app.state.webhook_secrets = SecretBox(
        key.get_secret_value() if key else None, settings.webhooks_secret_encryption_key_file
    )
    app.state.started = False
    install_error_handlers(app)
    install_allow_header(app)
    app.add_middleware(RequestSizeLimit, max_bytes=settings.max_request_bytes)
    app.add_middleware(CorrelationAndMetrics)
    _install_ops(app)
    if settings.serves_http:
        for router in ROUTERS:
            app.include_router(router)
        _install_openapi(app)
        install_console(app, settings.console_dir)
    return app
