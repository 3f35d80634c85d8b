"""`python -m mailstream_inbox` as a real process: ready, serving, metrics, and a graceful SIGTERM with open SSE."""

import asyncio
import signal

import httpx
import pytest
from pymongo import AsyncMongoClient

from mailstream_inbox.repositories import accounts as accounts_repo
from mailstream_inbox.repositories import api_keys as api_keys_repo
from tests.support.processes import ServiceProcess, free_port


@pytest.fixture
def gateway_process(backends, tmp_path):
    port = free_port()
    database = f"{backends.database}_inbox"  # shared with the package gateway: indexes exist
    process = ServiceProcess(
        "inbox",
        "mailstream_inbox",
        {
            "AMQP_URL": backends.amqp_url,
            "MONGODB_URI": backends.mongodb_uri,
            "MONGODB_DATABASE": database,
            "INBOX_HTTP_PORT": str(port),
            "INBOX_ROLE": "api",  # the package's in-process gateway owns the work queues
            "SHUTDOWN_GRACE_SECONDS": "5",
        },
        f"http://127.0.0.1:{port}",
        tmp_path,
    )
    process.database = database
    yield process
    process.stop()


async def test_the_process_serves_and_stops_gracefully_with_an_open_event_stream(gateway_process, backends):
    await asyncio.to_thread(gateway_process.start)
    client = AsyncMongoClient(backends.mongodb_uri, tz_aware=True)
    try:
        db = client[gateway_process.database]
        account = await accounts_repo.create_account(db, "Process")
        _doc, key = await api_keys_repo.create_api_key(db, account["_id"], "admin", "admin", created_by="test")
    finally:
        await client.close()
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=gateway_process.ops_url, headers=headers, timeout=10) as http:
        assert (await http.get("/v1/topics")).status_code == 200
        metrics = (await http.get("/metrics")).text
        assert 'mailstream_inbox_http_request_seconds_count{method="GET",route="/v1/topics",status="200"}' in metrics
        async with http.stream("GET", "/v1/events", timeout=httpx.Timeout(10, read=15)) as events:
            assert events.status_code == 200
            lines = events.aiter_lines()
            assert (await anext(lines)).startswith("retry:")
            gateway_process.proc.send_signal(signal.SIGTERM)
            async for _line in lines:  # the stream ends (instead of holding the shutdown up)
                pass
    code = await asyncio.to_thread(gateway_process.proc.wait, 20)
    assert code == 0, gateway_process.logs()
    assert '"stopped"' in gateway_process.logs()
