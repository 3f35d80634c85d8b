"""Helpers of the consumer tests: stored-message events and a tap on the commands automation publishes."""

import asyncio
import uuid
from datetime import UTC, datetime
from pathlib import Path

import aio_pika
import httpx
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue

from mailstream_common import topology
from mailstream_common.broker import Broker
from mailstream_common.contracts import Address, ConversationActionsRequested, HeaderField, MessageStored
from tests.support.processes import ServiceProcess, free_port
from tests.support.service_tokens import service_env
from tests.support.waiting import wait_for


def stored_message(account_id: str, **overrides) -> MessageStored:
    fields = {
        "account_id": account_id,
        "topic_id": "topic-1",
        "stream_id": "stream-1",
        "conversation_id": uuid.uuid4().hex,
        "message_id": uuid.uuid4().hex,
        "direction": "inbound",
        "is_first_message": True,
        "from_": Address(name="Kana", address="kana@example.net"),
        "to": [Address(address="support@acme.test")],
        "subject": "Refund please",
        "text": "Order 1234 arrived broken.",
        "headers": [],
        "received_at": datetime.now(UTC),
    }
    fields |= overrides
    fields["headers"] = [HeaderField(name=n, value=v) if isinstance(n, str) else n for n, v in fields["headers"]]
    return MessageStored(**fields)


class CommandTap:
    """A private queue bound to `conversation.actions_requested`: every command published, as parsed."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.received: list[ConversationActionsRequested] = []
        self._channel: AbstractChannel | None = None
        self._queue: AbstractQueue | None = None

    async def start(self) -> "CommandTap":
        self._channel = await self.broker.connection.channel()
        exchange = await topology.declare_exchange(self._channel)
        self._queue = await self._channel.declare_queue(exclusive=True, auto_delete=True)
        await self._queue.bind(exchange, routing_key=ConversationActionsRequested.event_name)
        await self._queue.consume(self._on_message)
        return self

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        async with message.process():
            self.received.append(ConversationActionsRequested.model_validate_json(message.body))

    def for_message(self, message_id: str) -> list[ConversationActionsRequested]:
        return [c for c in self.received if c.trigger_message_id == message_id]

    async def wait_for_message(self, message_id: str, timeout: float = 15) -> list[ConversationActionsRequested]:
        return await wait_for(
            lambda: asyncio.sleep(0, self.for_message(message_id)), timeout=timeout, what=f"command for {message_id}"
        )

    async def stop(self) -> None:
        if self._channel is not None and not self._channel.is_closed:
            await self._channel.close()


def automation_process(
    name: str, amqp_url: str, mongodb_uri: str, database: str, log_dir: Path, **env: str
) -> ServiceProcess:
    """`python -m mailstream_automation` (not yet started) on a port of its own."""
    port = free_port()
    environment = {
        "AMQP_URL": amqp_url,
        "MONGODB_URI": mongodb_uri,
        "MONGODB_DATABASE": database,
        **service_env(),
        "AUTOMATION_HTTP_PORT": str(port),
        "CONSUMER_PREFETCH": "1",
        "SHUTDOWN_GRACE_SECONDS": "5",
        **env,
    }
    return ServiceProcess(name, "mailstream_automation", environment, f"http://127.0.0.1:{port}", log_dir)


async def delete_queues(broker: Broker, spec: topology.QueueSpec) -> None:
    channel = await broker.connection.channel()
    try:
        for name in (spec.name, spec.dead_letter_queue):  # the retry tiers are shared by every queue
            await channel.queue_delete(name)
    finally:
        await channel.close()


__all__ = ["CommandTap", "aio_pika", "automation_process", "delete_queues", "stored_message"]


# The rule API's bodies and checks, shared by the api/ tests.

TAG = {"type": "add_tags", "tags": ["vip"]}
REFUND = {"field": "subject", "operator": "contains", "value": "refund"}


def account() -> str:
    return uuid.uuid4().hex


def rule(name: str = "Tag refunds", **extra) -> dict:
    return {"name": name, "conditions": [REFUND], "actions": [TAG]} | extra


async def create(client: httpx.AsyncClient, **extra) -> dict:
    response = await client.post("/v1/automation/rules", json=rule(**extra))
    assert response.status_code == 201, response.text
    return response.json()


def error_locs(response: httpx.Response) -> list[list]:
    assert response.status_code == 422, response.text
    return [e["loc"] for e in response.json()["detail"]]
