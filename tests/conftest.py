"""Fixtures every test may use: the real back-ends, a fresh database, a connected broker, a condition waiter.

Service-specific fixtures (running processes, SMTP sinks, DNS servers) live next to the tests that need them.
"""

import itertools
import os
from collections.abc import AsyncIterator, Iterator

import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import AutoReconnect

from mailstream_common.broker import Broker
from tests.support import backends as backends_module

_db_counter = itertools.count()


@pytest.fixture(scope="session")
def backends(request: pytest.FixtureRequest) -> Iterator[backends_module.Backends]:
    with backends_module.provide(os.environ.get("AMQP_URL"), os.environ.get("MONGODB_URI")) as found:
        # Said on the terminal, not captured: a reader of the CI log must see what the tests ran against.
        reporter = request.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"\nback-ends: {found.description}")
        yield found


def pytest_report_header(config: pytest.Config) -> str:
    return (
        f"back-ends: AMQP_URL={'set' if os.environ.get('AMQP_URL') else 'unset'}, "
        f"MONGODB_URI={os.environ.get('MONGODB_URI', 'unset (testcontainers)')}"
    )


@pytest.fixture(scope="session")
async def session_mongo_client(backends: backends_module.Backends) -> AsyncIterator[AsyncMongoClient]:
    client = AsyncMongoClient(backends.mongodb_uri, tz_aware=True)
    yield client
    await client.close()


@pytest.fixture
async def mongo_client(session_mongo_client: AsyncMongoClient) -> AsyncMongoClient:
    """The session's client, its pool cleared of connections the server closed while other tests ran.

    SecantusDB closes a client connection idle for 300 s (real MongoDB does not); a long run of tests that never touch
    this client (run.sh, the browser, the soak) leaves its pooled connections dead, and the next write on one fails
    with "connection closed" (retryWrites=false in the dev URI, so the driver does not retry it). A failed ping makes
    the driver drop the whole pool; the next one opens a fresh connection.
    """
    for attempt in range(3):
        try:
            await session_mongo_client.admin.command("ping")
            break
        except AutoReconnect:
            if attempt == 2:
                raise
    return session_mongo_client


@pytest.fixture
async def mongo_db(mongo_client: AsyncMongoClient, backends: backends_module.Backends) -> AsyncIterator[AsyncDatabase]:
    """A database of its own for one test, dropped afterwards."""
    name = f"{backends.database}_{next(_db_counter)}"
    yield mongo_client[name]
    await mongo_client.drop_database(name)


@pytest.fixture
async def broker(backends: backends_module.Backends) -> AsyncIterator[Broker]:
    b = Broker(backends.amqp_url, service="tests")
    await b.connect()
    yield b
    await b.close(grace=5)
