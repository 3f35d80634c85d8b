"""The correlation id of an HTTP request: the caller's `X-Correlation-Id`, or a new one.

A pure ASGI middleware (no per-request task, no body buffering), so it never gets in the way of streaming
responses (SSE, raw downloads). It sets `logs.correlation_id` for the request's log lines and echoes the id on the
response. A given id is kept only if it is short and plain, so a caller cannot inject text into log lines.
"""

import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mailstream_common import logs

HEADER = b"x-correlation-id"
_SAFE_ID = re.compile(rb"[A-Za-z0-9._:-]{1,64}")


def correlation_id_of(headers: list[tuple[bytes, bytes]]) -> str:
    """The request's id if it sent a usable one, else a new one."""
    given = next((value for key, value in headers if key == HEADER), b"")
    return given.decode("ascii") if _SAFE_ID.fullmatch(given) else logs.new_correlation_id()


class CorrelationId:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cid = correlation_id_of(scope["headers"])
        token = logs.correlation_id.set(cid)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (HEADER, cid.encode("ascii"))]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            logs.correlation_id.reset(token)
