"""The ops endpoints every service serves, over real HTTP, and the JSON log lines with correlation ids."""

import io
import json
import logging

import httpx

from mailstream_common import logs
from mailstream_common.ops import OpsServer
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
