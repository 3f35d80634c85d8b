"""The outbox when the database dies between the broker's confirm and the write that records it (found by the
fault suite, issue 12): the event is out, so the publish counts as done.

Before: the failed `mark_published` raised; for an agent's reply the API answered 503 "nothing will be sent, try
again" for a reply that was queued and went out, and the agent's second try sent the customer a second reply.

Real parts: the real RabbitMQ confirms the publish, and a private SecantusDB is killed (SIGKILL) at that moment.
"""

import uuid

import pytest
from pymongo import AsyncMongoClient

from mailstream_common import topology
from mailstream_common.broker import Broker
from mailstream_common.contracts import StreamChanged
from mailstream_inbox.outbox import publish_once
from mailstream_inbox.repositories import messages as messages_repo
from tests.support.backends import Backends
from tests.support.secantus import SecantusServer, secantusd_binary

pytestmark = pytest.mark.integration


class KillsTheDatabaseOnConfirm(Broker):
    """A real broker connection; right after the broker confirmed a publish, the database process is killed."""

    def __init__(self, url: str, server: SecantusServer) -> None:
        super().__init__(url, service="test-outbox")
        self.server = server
        self.confirmed: list[str] = []

    async def publish(self, event, **kwargs) -> None:
        await super().publish(event, **kwargs)
        self.confirmed.append(event.event_id)
        self.server.kill9()


def _event() -> StreamChanged:
    return StreamChanged(
        change="created",
        version=1,
        account_id="a1",
        topic_id="t1",
        stream_id=uuid.uuid4().hex,
        address="support@acme.test",
        forwarding_address="x@in.mailstream.test",
        allow_agent_send=True,
    )


async def test_a_confirmed_publish_counts_as_published_though_the_database_died_before_recording_it(
    backends: Backends, tmp_path
):
    binary = secantusd_binary()
    if binary is None:
        pytest.skip("secantusd-py not found: run scripts/deps.sh (it exports SECANTUSD_BIN)")
    server = SecantusServer(binary, tmp_path / "data", tmp_path / "secantusd.log").start()
    broker = KillsTheDatabaseOnConfirm(backends.amqp_url, server)
    await broker.connect()
    bound = topology.QueueSpec(f"test.outbox.{uuid.uuid4().hex[:8]}", (StreamChanged,), retry_delays=(1,))
    await broker.declare(bound)  # the publish is mandatory: something must be bound to take it
    client = AsyncMongoClient(server.uri, serverSelectionTimeoutMS=1500, connectTimeoutMS=1500)
    try:
        db = client["outbox_crash"]
        message_id = uuid.uuid4().hex
        await db[messages_repo.COLLECTION].insert_one({"_id": message_id, "pending_event": {"x": 1}})
        event = _event()

        assert await publish_once(db, broker, message_id, event) is True  # was: ServerSelectionTimeoutError
        assert broker.confirmed == [event.event_id]

        # The database comes back on its storage: the message is still unmarked, so a repeat publishes once more
        # (which consumers take idempotently); what mattered is that the caller was not told "not sent".
        server.start()
        stored = await db[messages_repo.COLLECTION].find_one({"_id": message_id})
        assert stored is not None and not stored.get("published")
    finally:
        channel = await broker.connection.channel()
        for name in (bound.name, bound.dead_letter_queue):  # the retry tiers are shared by every queue
            await channel.queue_delete(name)
        await channel.close()
        await client.close()
        await broker.close()
        server.stop()
