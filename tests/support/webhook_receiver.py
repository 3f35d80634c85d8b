"""A real HTTP endpoint for webhook tests and the dispatch benchmark: it verifies every request with the Standard
Webhooks reference library and answers as each test scripts it (a status, or a stall past the dispatcher's
timeout)."""

import asyncio
import contextlib
import json
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from tests.support.processes import free_port


@dataclass(frozen=True)
class Received:
    path: str
    webhook_id: str
    headers: dict[str, str]
    body: bytes
    verified: bool
    payload: dict[str, Any] | None
    at: float


@dataclass
class Endpoint:
    """One path of the receiver: its secret (to verify) and its scripted answers (then `default`)."""

    secret: str | None = None
    script: deque = field(default_factory=deque)  # ints (a status) or ("stall", seconds)
    default: int = 200
    delay: float = 0.0  # every answer waits this long first (a slow endpoint)


class Receiver:
    def __init__(self) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.endpoints: dict[str, Endpoint] = {}
        self.received: list[Received] = []
        self.arrived = asyncio.Event()

    def endpoint(self, path: str, *answers: Any, default: int = 200, delay: float = 0.0) -> str:
        self.endpoints[path] = Endpoint(script=deque(answers), default=default, delay=delay)
        return f"{self.base_url}{path}"

    def set_secret(self, path: str, secret: str) -> None:
        self.endpoints[path].secret = secret

    def at(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == path]

    async def _handle(self, request: Request) -> PlainTextResponse:
        body = await request.body()
        endpoint = self.endpoints.get(request.url.path)
        if endpoint is None:
            return PlainTextResponse("no such endpoint", status_code=404)
        headers = {k.lower(): v for k, v in request.headers.items()}
        verified, payload = False, None
        if endpoint.secret is not None:
            try:
                payload = Webhook(endpoint.secret).verify(body, headers)
                verified = True
            except WebhookVerificationError:
                payload = json.loads(body) if body else None
        self.received.append(
            Received(request.url.path, headers.get("webhook-id", ""), headers, body, verified, payload, time.time())
        )
        self.arrived.set()
        answer = endpoint.script.popleft() if endpoint.script else endpoint.default
        if endpoint.delay:
            await asyncio.sleep(endpoint.delay)
        if isinstance(answer, tuple) and answer[0] == "stall":
            await asyncio.sleep(answer[1])
            answer = 200
        if answer in (301, 302, 307, 308):
            return PlainTextResponse("moved", status_code=answer, headers={"location": f"{self.base_url}/elsewhere"})
        return PlainTextResponse(f"answer {answer}", status_code=answer)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator["Receiver"]:
        app = Starlette(routes=[Route("/{path:path}", self._handle, methods=["POST"])])
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_config=None, access_log=False, lifespan="off")
        )
        server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign]
        task = asyncio.create_task(server.serve())
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("the webhook receiver did not start")
            await asyncio.sleep(0.02)
        try:
            yield self
        finally:
            server.should_exit = True
            await asyncio.wait_for(task, 10)
