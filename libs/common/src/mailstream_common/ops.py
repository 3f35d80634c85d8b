"""/healthz, /readyz and /metrics for every service.

HTTP services mount `ops_routes()` into their own app and serve it with `HttpServer`; ingest, which has no HTTP
API, runs `OpsServer`, the ops routes alone on a port of their own. Both share the service's event loop.
"""

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from . import tracing

log = logging.getLogger(__name__)

ReadinessCheck = Callable[[], bool | Awaitable[bool]]


def ops_routes(checks: Mapping[str, ReadinessCheck]) -> list[Route]:
    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(_: Request) -> Response:
        results: dict[str, bool] = {}
        for name, check in checks.items():
            try:
                outcome = check()
                if inspect.isawaitable(outcome):
                    outcome = await asyncio.wait_for(outcome, timeout=3)
                results[name] = bool(outcome)
            except Exception:
                results[name] = False
        ready = all(results.values())
        return JSONResponse({"ready": ready, "checks": results}, status_code=200 if ready else 503)

    async def metrics(_: Request) -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return [
        Route("/healthz", healthz, include_in_schema=False),
        Route("/readyz", readyz, include_in_schema=False),
        Route("/metrics", metrics, include_in_schema=False),
    ]


class HttpServer:
    """An ASGI app under uvicorn, in the service's own event loop.

    The service frame (`service.run`) owns SIGTERM/SIGINT and sets `stop`; uvicorn's own signal capture would
    re-raise the signal at exit (status -15), so it is switched off here, once for every service.
    """

    def __init__(self, app: ASGIApp, host: str, port: int, **config: Any) -> None:
        self.address = f"{host}:{port}"
        tracing.instrument_app(app)  # server spans, when tracing is on
        config.setdefault("log_config", None)
        config.setdefault("access_log", False)
        # Longer than the idle timeout of the load balancers and clients in front (60 s is common): a server that
        # closes an idle keep-alive connection first races the client's next request on it (a reset, or a 502).
        config.setdefault("timeout_keep_alive", 75)
        self._server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, **config))
        self._server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign]
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Return once the server listens (after the app's lifespan start-up); fail if it cannot (port taken)."""
        self._task = asyncio.create_task(self._serve())
        while not self._server.started:
            if self._task.done():
                raise SystemExit(f"HTTP server on {self.address} failed to start")
            await asyncio.sleep(0.01)

    async def _serve(self) -> None:
        # uvicorn calls sys.exit() when it cannot bind or its lifespan start-up fails; a SystemExit escaping a task
        # would tear down the whole event loop, so it ends this task instead and start()/wait() report it.
        try:
            await self._server.serve()
        except SystemExit as exc:
            log.error("HTTP server exited", extra={"address": self.address, "code": exc.code})

    async def wait(self, stop: asyncio.Event) -> None:
        """Serve until `stop` is set; a server that ends by itself first is an error, not a shutdown."""
        assert self._task is not None, "start() first"
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({self._task, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if not stop.is_set():
            log.error("HTTP server stopped unexpectedly", extra={"address": self.address})
            raise SystemExit(1)

    async def stop(self) -> None:
        """Stop accepting, let in-flight requests finish, run the app's lifespan shutdown."""
        self._server.should_exit = True
        if self._task is not None:
            await self._task


class OpsServer(HttpServer):
    """The ops routes on a port of their own, for services without an HTTP API (ingest)."""

    def __init__(self, host: str, port: int, checks: Mapping[str, ReadinessCheck]) -> None:
        super().__init__(Starlette(routes=ops_routes(checks)), host, port)
