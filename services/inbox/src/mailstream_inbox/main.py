"""Wiring only: run the gateway app under uvicorn inside the service frame, and stop it gracefully.

Shutdown order on SIGTERM: end the live (SSE) streams so open responses can finish, stop the HTTP server (it stops
accepting and drains requests), then the app's lifespan closes the broker with the grace period (in-flight
consumer work finishes or is requeued) and the database client.
"""

import asyncio
import contextlib

import uvicorn

from mailstream_common.service import run

from .app import create_app
from .settings import InboxSettings


async def main(stop: asyncio.Event) -> None:
    settings = InboxSettings()
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=int(settings.shutdown_grace_seconds),
        proxy_headers=False,
    )
    server = uvicorn.Server(config)
    server.capture_signals = contextlib.nullcontext  # the service frame owns the signals (sets `stop`)
    serving = asyncio.create_task(server.serve())
    stopping = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
    if serving in done:  # the server ended by itself (e.g. the port was taken): surface why
        stopping.cancel()
        serving.result()
        if not server.started:
            raise SystemExit("inbox gateway failed to start")
        return
    app.state.live.close()
    server.should_exit = True
    await serving


def cli() -> None:
    run("inbox", main, log_level=InboxSettings().log_level)
