"""Wiring only: run the gateway app under uvicorn inside the service frame, and stop it gracefully.

Shutdown order on SIGTERM: end the live (SSE) streams so open responses can finish, stop the HTTP server (it stops
accepting and drains requests), then the app's lifespan closes the broker with the grace period (in-flight
consumer work finishes or is requeued) and the database client.
"""

import asyncio

from mailstream_common.ops import HttpServer
from mailstream_common.service import run

from .api.app import create_app
from .settings import InboxSettings


async def main(stop: asyncio.Event) -> None:
    settings = InboxSettings()
    app = create_app(settings)
    server = HttpServer(
        app,
        settings.http_host,
        settings.http_port,
        lifespan="on",
        timeout_graceful_shutdown=int(settings.shutdown_grace_seconds),
        proxy_headers=False,
    )
    await server.start()
    try:
        await server.wait(stop)
    finally:
        app.state.live.close()
        await server.stop()


def cli() -> None:
    run("inbox", main, log_level=InboxSettings().log_level)
