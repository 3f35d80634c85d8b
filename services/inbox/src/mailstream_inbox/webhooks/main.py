"""Wiring only: the webhook dispatcher process (`python -m mailstream_inbox.webhooks`), any number of replicas.

It consumes `webhooks.events` and `webhooks.attempts`, serves /healthz, /readyz and /metrics on
WEBHOOKS_OPS_PORT, and on SIGTERM stops taking work and lets in-flight attempts finish for the grace period
(what does not finish is requeued by the broker and its lease runs out).
"""

import asyncio

from mailstream_common import mongo
from mailstream_common.broker import Broker
from mailstream_common.ops import OpsServer
from mailstream_common.service import run

from . import repositories, sending
from .dispatcher import Dispatcher
from .settings import WebhookSettings
from .signing import SecretBox

SERVICE = "webhooks"


async def main(stop: asyncio.Event) -> None:
    settings = WebhookSettings()
    box = SecretBox(
        settings.secret_encryption_key.get_secret_value() if settings.secret_encryption_key else None,
        settings.secret_encryption_key_file,
    )
    client = mongo.create_client(settings.mongodb_uri.get_secret_value(), app_name="mailstream-webhooks")
    db = client[settings.mongodb_database]
    broker = Broker(settings.amqp_url.get_secret_value(), service=SERVICE)
    http = sending.new_client(settings.concurrency)

    async def database_ready() -> bool:
        return await mongo.ping(client)

    ops = OpsServer(settings.ops_host, settings.ops_port, {"database": database_ready, "broker": broker.is_ready})
    try:
        await mongo.ensure_indexes(db, repositories.INDEXES)
        await broker.connect()
        Dispatcher(db, broker, settings, box, http).register()
        await broker.start()
        await ops.start()
        await stop.wait()
    finally:
        await broker.close(settings.shutdown_grace_seconds)
        await ops.stop()
        await http.aclose()
        await client.close()


def cli() -> None:
    run(SERVICE, main, log_level=WebhookSettings().log_level)
