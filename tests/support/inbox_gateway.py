"""The real inbox gateway app served over real HTTP in the test's event loop, and a tap on broker events.

`running_gateway()` runs `create_app(settings)` under uvicorn on a free loopback port with its full lifespan (Mongo,
indexes, broker, consumers, live queue), so tests talk HTTP to exactly what `python -m mailstream_inbox` serves,
and can still reach `gateway.app.state` (db, live hub) to check what HTTP cannot show.
"""

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import aio_pika
import uvicorn

from mailstream_common import topology
from mailstream_common.contracts import Event
from mailstream_inbox.api.app import create_app
from mailstream_inbox.settings import InboxSettings
from tests.support.processes import free_port

E = TypeVar("E", bound=Event)


@dataclass
class Gateway:
    base_url: str
    app: Any
    settings: InboxSettings

    @property
    def db(self):
        return self.app.state.db


@contextlib.asynccontextmanager
async def running_gateway(amqp_url: str, mongodb_uri: str, database: str, **env: str) -> AsyncIterator[Gateway]:
    """Serve the gateway until the block ends; `env` overrides settings by their environment names."""
    port = free_port()
    settings = InboxSettings(
        **{
            "AMQP_URL": amqp_url,
            "MONGODB_URI": mongodb_uri,
            "MONGODB_DATABASE": database,
            "INBOX_HTTP_HOST": "127.0.0.1",
            "INBOX_HTTP_PORT": port,
            "SHUTDOWN_GRACE_SECONDS": 5,
            **env,
        }
    )
    app = create_app(settings)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="on")
    )
    server.capture_signals = contextlib.nullcontext
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("the inbox gateway did not start")
        await asyncio.sleep(0.02)
    try:
        yield Gateway(f"http://127.0.0.1:{port}", app, settings)
    finally:
        app.state.live.close()
        server.should_exit = True
        await asyncio.wait_for(task, 30)


class EventTap:
    """An exclusive queue bound to some routing keys: what was published, as contracts, in order."""

    def __init__(self, amqp_url: str, events: Sequence[type[Event]]) -> None:
        self.amqp_url = amqp_url
        self.events = {e.event_name: e for e in events}
        self.received: asyncio.Queue[Event] = asyncio.Queue()
        self._connection: aio_pika.abc.AbstractConnection | None = None

    async def __aenter__(self) -> "EventTap":
        self._connection = await aio_pika.connect(self.amqp_url)
        channel = await self._connection.channel()
        exchange = await topology.declare_exchange(channel)
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        for name in self.events:
            await queue.bind(exchange, routing_key=name)
        await queue.consume(self._on_message, no_ack=True)
        return self

    async def _on_message(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        name = (message.headers or {}).get("x-event") or message.routing_key
        model = self.events.get(str(name))
        if model is not None:
            self.received.put_nowait(model.model_validate(json.loads(message.body)))

    async def __aexit__(self, *exc: object) -> None:
        if self._connection is not None:
            await self._connection.close()

    async def next_matching(
        self, model: type[E], predicate: Callable[[E], bool] = lambda _: True, timeout: float = 30.0
    ) -> E:
        """The next published `model` event that satisfies `predicate` (others are skipped)."""

        async def _wait() -> E:
            while True:
                event = await self.received.get()
                if isinstance(event, model) and predicate(event):
                    return event

        return await asyncio.wait_for(_wait(), timeout)
