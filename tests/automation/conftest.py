"""Automation's fixtures: the rule API served over real HTTP (uvicorn on a free port) on a fresh database."""

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import uvicorn
from pymongo.asynchronous.database import AsyncDatabase

from mailstream_automation.api.app import create_app
from mailstream_automation.repositories import ensure_indexes
from mailstream_automation.settings import AutomationSettings
from mailstream_common.broker import Broker
from tests.support.backends import Backends, _vhost
from tests.support.processes import free_port
from tests.support.service_tokens import GATEWAY_TOKEN, service_env
from tests.support.waiting import wait_for

INTERNAL_TOKEN = GATEWAY_TOKEN  # the gateway's own credential: the only one automation accepts


def gateway_headers(account_id: str, role: str = "admin", token: str = INTERNAL_TOKEN) -> dict[str, str]:
    """What the gateway adds when it proxies a caller's request."""
    return {"X-Internal-Token": token, "X-Account-Id": account_id, "X-Role": role, "X-Key-Id": f"key-{account_id}"}


def test_settings(**overrides) -> AutomationSettings:
    # The projection a test fills is complete before it saves a rule: an unknown id is a 422 at once.
    overrides = {"reference_settle_seconds": 0, **overrides}
    return AutomationSettings(**{**service_env(), **overrides})


test_settings.__test__ = False  # a helper, not a test


@pytest.fixture(scope="session")
def automation_backends(backends: Backends) -> Iterator[Backends]:
    """The session's back-ends with a RabbitMQ vhost of automation's own: the commands these tests publish (to
    `inbox.actions`, for conversations that exist nowhere) never reach another suite's inbox consumer."""
    with _vhost(backends.amqp_url) as amqp_url:
        yield dataclasses.replace(backends, amqp_url=amqp_url)


@pytest.fixture
async def broker(automation_backends: Backends) -> AsyncIterator[Broker]:
    """Overrides the suite-wide `broker`: connected to automation's own vhost."""
    connected = Broker(automation_backends.amqp_url, service="tests")
    await connected.connect()
    yield connected
    await connected.close(grace=5)


class ApiServer:
    def __init__(self, base_url: str, db: AsyncDatabase) -> None:
        self.base_url = base_url
        self.db = db

    def client(self, account_id: str, role: str = "admin", **headers: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.base_url, headers={**gateway_headers(account_id, role), **headers}, timeout=10
        )


@pytest.fixture
async def api(mongo_db: AsyncDatabase) -> AsyncIterator[ApiServer]:
    await ensure_indexes(mongo_db)
    app = create_app(test_settings(), mongo_db, {"database": lambda: True})
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="off"))
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve())
    await wait_for(lambda: asyncio.sleep(0, server.started or task.done()), what="uvicorn started")
    if task.done():
        task.result()
    try:
        yield ApiServer(f"http://127.0.0.1:{port}", mongo_db)
    finally:
        server.should_exit = True
        await task
