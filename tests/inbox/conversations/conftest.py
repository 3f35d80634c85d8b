"""Fixtures for the conversations half: a topic and stream per test account, a way to deliver analysed mail to the
running gateway (published on the real broker, as ingest would), and a wait for the consumers to finish."""

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest_asyncio

from mailstream_common.broker import Broker
from mailstream_common.contracts import MailAnalysed
from mailstream_common.metrics import MESSAGES_CONSUMED
from tests.inbox.conftest import ApiAccount
from tests.support.waiting import wait_for

from .mail import build_mail


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
