"""The ops endpoints every service serves, over real HTTP, and the JSON log lines with correlation ids."""

import asyncio
import io
import json
import logging
import socket

import httpx
import pytest
from starlette.applications import Starlette

from mailstream_common import logs
from mailstream_common.ops import HttpServer, OpsServer
from tests.support.processes import free_port


async def test_ops_server_serves_health_readiness_and_metrics():
    ready = {"broker": True}
    port = free_port()
    server = OpsServer("127.0.0.1", port, {"broker": lambda: ready["broker"], "database": _async_true})
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            assert (await client.get("/healthz")).json() == {"status": "ok"}
            response = await client.get("/readyz")
            assert response.status_code == 200
            assert response.json()["checks"] == {"broker": True, "database": True}
            ready["broker"] = False
            response = await client.get("/readyz")
            assert response.status_code == 503
            assert response.json()["checks"]["broker"] is False
            metrics = await client.get("/metrics")
            assert "mailstream_broker_published_total" in metrics.text
    finally:
        await server.stop()


async def test_http_server_on_a_taken_port_fails_at_start_instead_of_running_without_http():
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        server = HttpServer(Starlette(), "127.0.0.1", holder.getsockname()[1])
        with pytest.raises(SystemExit):
            await server.start()
        await server.stop()  # stopping a server that never started is harmless


async def test_http_server_serves_until_stop_and_then_stops_listening():
    port = free_port()
    server = HttpServer(Starlette(), "127.0.0.1", port)
    await server.start()
    stop = asyncio.Event()
    waiting = asyncio.create_task(server.wait(stop))
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        assert (await client.get("/nothing")).status_code == 404
    assert not waiting.done()
    stop.set()
    await waiting  # returns normally: a requested stop is not an error
    await server.stop()
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            await client.get("/nothing")


async def test_http_server_that_ends_by_itself_is_an_error():
    server = HttpServer(Starlette(), "127.0.0.1", free_port())
    await server.start()
    server._server.should_exit = True  # as if uvicorn stopped on its own
    with pytest.raises(SystemExit):
        await server.wait(asyncio.Event())
    await server.stop()


async def _async_true() -> bool:
    return True


def test_log_lines_are_json_with_service_and_correlation_id():
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    logs.configure_logging("test-service", "INFO")
    stream = io.StringIO()
    handler = logging.getLogger().handlers[0]
    handler.setStream(stream)
    token = logs.correlation_id.set("corr-42")
    try:
        logging.getLogger("mailstream.test").info("mail accepted", extra={"mail_id": "m1"})
    finally:
        logs.correlation_id.reset(token)
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
    line = json.loads(stream.getvalue().strip().splitlines()[-1])
    assert line["message"] == "mail accepted"
    assert line["service"] == "test-service"
    assert line["correlation_id"] == "corr-42"
    assert line["mail_id"] == "m1"
    assert line["level"] == "INFO"
