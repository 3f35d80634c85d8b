"""Inbox fixtures: the real gateway over real HTTP, and accounts with an admin and an agent key.

`inbox_gateway` serves the inbox app (role "all": API, consumers and live updates) for the whole tests/inbox package
against the session's RabbitMQ vhost and a database of its own; it stops when the package is done, so it never
competes for queues with the end-to-end tests that start their own processes.
"""

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import httpx
import pytest
import pytest_asyncio

from mailstream_common.broker import Broker
from mailstream_common.contracts import MailAnalysed
from mailstream_common.metrics import MESSAGES_CONSUMED
from mailstream_inbox.repositories import accounts as accounts_repo
from mailstream_inbox.repositories import api_keys as api_keys_repo
from mailstream_inbox.settings import default_dead_letter_queues
from tests.support.backends import Backends
from tests.support.inbox_gateway import Gateway, running_gateway
from tests.support.waiting import wait_for

from .mail import build_mail

#: A queue only tests/inbox/api/test_dead_letters.py consumes (with a consumer that fails for some inputs).
PROBE_QUEUE = "tests.dead_letter_probe"


@pytest_asyncio.fixture(scope="package", loop_scope="session")
async def inbox_gateway(backends: Backends) -> AsyncIterator[Gateway]:
    async with running_gateway(
        backends.amqp_url,
        backends.mongodb_uri,
        f"{backends.database}_inbox",
        # Nothing listens here: proxy tests start their own gateway pointing at a real upstream.
        DOMAINS_URL="http://127.0.0.1:9",
        AUTOMATION_URL="http://127.0.0.1:9",
        SENDER_URL="http://127.0.0.1:9",
        # The dead-letter tests' own consumer fails on purpose in this queue; the keeper watches it too.
        INBOX_DEAD_LETTER_QUEUES=[*default_dead_letter_queues(), PROBE_QUEUE],
        INBOX_DEAD_LETTER_GAUGE_SECONDS=0.2,
    ) as gateway:
        yield gateway


@dataclass
class ApiAccount:
    """An account with both kinds of key and an HTTP client for each (real HTTP to the gateway)."""

    account_id: str
    admin_key: str
    agent_key: str
    agent_key_id: str
    admin: httpx.AsyncClient
    agent: httpx.AsyncClient


async def create_account_with_keys(gateway: Gateway, name: str = "Acme") -> ApiAccount:
    """The account and its admin key straight in the database (as the CLI does), the agent key over the API."""
    account = await accounts_repo.create_account(gateway.db, name)
    _doc, admin_key = await api_keys_repo.create_api_key(
        gateway.db, account["_id"], "admin", "admin", created_by="test"
    )
    admin = httpx.AsyncClient(base_url=gateway.base_url, headers={"Authorization": f"Bearer {admin_key}"}, timeout=10)
    response = await admin.post("/v1/api-keys", json={"role": "agent", "name": "agent"})
    assert response.status_code == 201, response.text
    agent_key = response.json()["api_key"]
    agent = httpx.AsyncClient(base_url=gateway.base_url, headers={"Authorization": f"Bearer {agent_key}"}, timeout=10)
    return ApiAccount(account["_id"], admin_key, agent_key, response.json()["id"], admin, agent)


@pytest_asyncio.fixture(loop_scope="session")
async def make_account(inbox_gateway: Gateway) -> AsyncIterator[Callable[..., Awaitable[ApiAccount]]]:
    """Factory: `await make_account("Name")`; the clients are closed after the test."""
    made: list[ApiAccount] = []

    async def _make(name: str = "Acme") -> ApiAccount:
        account = await create_account_with_keys(inbox_gateway, name)
        made.append(account)
        return account

    yield _make
    for account in made:
        await account.admin.aclose()
        await account.agent.aclose()


@pytest_asyncio.fixture(loop_scope="session")
async def account(make_account) -> ApiAccount:
    return await make_account("Acme")


@pytest_asyncio.fixture(loop_scope="session")
async def other_account(make_account) -> ApiAccount:
    return await make_account("Globex")


@pytest.fixture
def anonymous(inbox_gateway: Gateway) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=inbox_gateway.base_url, timeout=10)


@dataclass
class StreamFixture:
    account: ApiAccount
    topic_id: str
    stream_id: str
    address: str
    forwarding_address: str


def handled(queue: str) -> float:
    """Messages a consumer of this process finished for good (acked or dead-lettered) on `queue`.

    Not "retry": a message scheduled for a retry (a lease not won in time, the database busy under load) is not
    handled yet, and a test that went on would look for a conversation that does not exist yet.
    """
    return sum(MESSAGES_CONSUMED.labels(queue, outcome)._value.get() for outcome in ("ack", "dead"))


async def consumed(queue: str, before: float, count: int) -> None:
    """Wait until the in-process gateway's consumer on `queue` handled `count` more messages than `before`."""

    async def probe() -> bool:
        return handled(queue) >= before + count

    await wait_for(probe, timeout=60, what=f"{count} message(s) handled on {queue}")


async def create_stream(account: ApiAccount, address: str = "support@acme.test", **body) -> StreamFixture:
    topic = await account.admin.post("/v1/topics", json={"name": f"topic for {address}"})
    assert topic.status_code == 201, topic.text
    response = await account.admin.post(
        f"/v1/topics/{topic.json()['id']}/streams",
        json={"address": address, "allow_agent_send": True, "display_name": "Acme Support", **body},
    )
    assert response.status_code == 201, response.text
    stream = response.json()
    return StreamFixture(account, topic.json()["id"], stream["id"], address, stream["forwarding_address"])


@pytest_asyncio.fixture(loop_scope="session")
async def stream(account) -> StreamFixture:
    return await create_stream(account)


Deliver = Callable[..., Awaitable[MailAnalysed]]


@pytest_asyncio.fixture(loop_scope="session")
async def deliver(inbox_gateway, backends) -> AsyncIterator[Deliver]:
    """`await deliver(stream, event_or_build_kwargs..., wait=True)`: publish `mail.analysed`, wait until handled."""
    broker = Broker(backends.amqp_url, service="tests-ingest")
    await broker.connect()

    async def _deliver(target: StreamFixture, event: MailAnalysed | None = None, *, times: int = 1, **kwargs):
        event = event or build_mail(target, **kwargs)
        before = handled("inbox.store")
        for _ in range(times):
            await broker.publish(event)  # the same event again is what a broker redelivery looks like
        await consumed("inbox.store", before, times)
        return event

    yield _deliver
    await broker.close(grace=2)


@pytest_asyncio.fixture(loop_scope="session")
async def test_broker(backends) -> AsyncIterator[Broker]:
    broker = Broker(backends.amqp_url, service="tests-peer")
    await broker.connect()
    yield broker
    await broker.close(grace=2)
