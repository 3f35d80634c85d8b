"""The correlation middleware every HTTP app uses: keep a plain id the caller sent, else make one; log lines and
the response carry it."""

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from mailstream_common import logs
from mailstream_common.correlation import CorrelationId, correlation_id_of


async def _seen(request: Request) -> JSONResponse:
    return JSONResponse({"seen": logs.correlation_id.get()})


def _client() -> httpx.AsyncClient:
    app = Starlette(routes=[Route("/", _seen)])
    app.add_middleware(CorrelationId)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        (b"abc-123", True),
        (b"req.42:retry_1", True),
        (b"a" * 64, True),
        (b"a" * 65, False),
        (b"", False),
        (b"two words", False),
        (b"line\nbreak", False),
        (b"caf\xc3\xa9", False),
    ],
)
def test_a_plain_short_id_is_kept_anything_else_replaced(sent: bytes, kept: bool) -> None:
    cid = correlation_id_of([(b"x-correlation-id", sent)] if sent else [])
    assert (cid == sent.decode("latin-1")) is kept
    assert 1 <= len(cid) <= 64


async def test_the_id_reaches_log_context_and_response() -> None:
    async with _client() as client:
        given = await client.get("/", headers={"X-Correlation-Id": "abc-123"})
        made = await client.get("/")
    assert given.headers["x-correlation-id"] == "abc-123" == given.json()["seen"]
    assert made.headers["x-correlation-id"] == made.json()["seen"] and len(made.json()["seen"]) == 32
    assert logs.correlation_id.get() is None  # reset after each request
