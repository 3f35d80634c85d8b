"""Webhook fixtures: a real receiver over HTTP, dispatcher processes (`python -m mailstream_inbox.webhooks`) on the
gateway's database and the session's broker, and a gateway that accepts 127.0.0.1 endpoints."""

from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest
import pytest_asyncio

from tests.support.processes import ServiceProcess, free_port
from tests.support.waiting import wait_for
from tests.support.webhook_receiver import Receiver


@pytest_asyncio.fixture(loop_scope="session")
async def receiver() -> AsyncIterator[Receiver]:
    async with Receiver().running() as running:
        yield running


@pytest.fixture
def private_destinations_allowed(inbox_gateway, monkeypatch):
    """The operator's switch for on-premises receivers; the tests' receiver is on 127.0.0.1."""
    monkeypatch.setattr(inbox_gateway.settings, "webhooks_allow_private_destinations", True)


async def wait_ready(process: ServiceProcess, timeout: float = 60.0) -> ServiceProcess:
    """Wait for /readyz without blocking the event loop (the receiver and the gateway run in it)."""
    async with httpx.AsyncClient(timeout=1) as client:

        async def ready() -> bool:
            assert process.proc is not None
            if process.proc.poll() is not None:
                raise RuntimeError(f"{process.name} exited:\n{process.logs()}")
            try:
                return (await client.get(f"{process.ops_url}/readyz")).status_code == 200
            except httpx.HTTPError:
                return False

        await wait_for(ready, timeout=timeout, interval=0.1, what=f"{process.name} ready")
    return process


StartDispatcher = Callable[..., Awaitable[ServiceProcess]]


@pytest_asyncio.fixture(loop_scope="session")
async def start_dispatcher(backends, inbox_gateway, tmp_path) -> AsyncIterator[StartDispatcher]:
    started: list[ServiceProcess] = []

    async def _start(**env: str) -> ServiceProcess:
        port = free_port()
        database = inbox_gateway.settings.mongodb_database
        process = ServiceProcess(
            f"webhooks-{len(started)}",
            "mailstream_inbox.webhooks",
            {
                "AMQP_URL": backends.amqp_url,
                "MONGODB_URI": backends.mongodb_uri,
                "MONGODB_DATABASE": database,
                "INBOX_MONGODB_DATABASE": database,
                "OPS_HOST": "127.0.0.1",
                "WEBHOOKS_OPS_PORT": str(port),
                "WEBHOOKS_ALLOW_PRIVATE_DESTINATIONS": "true",
                "WEBHOOKS_RETRY_DELAYS": "1,1,1",
                "WEBHOOKS_ATTEMPT_TIMEOUT_SECONDS": "2",
                "SHUTDOWN_GRACE_SECONDS": "3",
                **env,
            },
            f"http://127.0.0.1:{port}",
            tmp_path,
        )
        started.append(process)
        process.spawn()
        return await wait_ready(process)

    yield _start
    for process in started:
        process.request_stop()
    for process in started:
        process.stop()
