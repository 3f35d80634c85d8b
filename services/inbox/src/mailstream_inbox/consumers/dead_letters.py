"""The dead-letter keeper: every `<queue>.dead` of the system emptied into `dead_letters`, where operators read them.

Each copy is stored (idempotently, by queue and message id; `repositories/dead_letters.py`) and then acked, so a
keeper that dies in between stores it again harmlessly. The broker's dead-letter queues therefore stay near empty,
and listing, paging and searching, requeue and discard are database operations (docs/architecture.md, "Dead
letters you can see"). Any number of inbox workers may run it: they share the queues like any consumer.

`mailstream_dead_letters{queue}` is the number of letters still `dead` per queue, refreshed on an interval by
every keeper from the database (so each replica reports the same figure: alert on `max by (queue)`).
"""

import asyncio
import logging
from collections.abc import Sequence

from aio_pika.abc import AbstractChannel, AbstractIncomingMessage
from pymongo.asynchronous.database import AsyncDatabase

from mailstream_common.broker import Broker
from mailstream_common.contracts import utcnow

from ..dead_letters import letter_record
from ..metrics import DEAD_LETTERS, DEAD_LETTERS_KEPT
from ..repositories import dead_letters as letters_repo

log = logging.getLogger(__name__)

#: How long a copy the database could not take waits before it goes back to its queue (no hot loop while the
#: database is down).
STORE_FAILURE_BACKOFF_SECONDS = 1.0


def dead_letter_queue(queue: str) -> str:
    return f"{queue}.dead"


class DeadLetterKeeper:
    def __init__(self, db: AsyncDatabase, broker: Broker, queues: Sequence[str], *, prefetch: int = 16) -> None:
        self.db = db
        self.broker = broker
        self.queues = tuple(queues)
        self.prefetch = prefetch
        self._channel: AbstractChannel | None = None

    async def start(self) -> None:
        self._channel = await self.broker.connection.channel()
        await self._channel.set_qos(prefetch_count=self.prefetch)
        for queue in self.queues:
            dead = await self._channel.declare_queue(
                dead_letter_queue(queue), durable=True, arguments={"x-queue-type": "quorum"}
            )
            await dead.consume(self._handler(queue))

    async def stop(self) -> None:
        if self._channel is not None and not self._channel.is_closed:
            await self._channel.close()  # unacked copies go back to their queues

    def _handler(self, queue: str):
        async def on_message(message: AbstractIncomingMessage) -> None:
            await self.keep(queue, message)

        return on_message

    async def keep(self, queue: str, message: AbstractIncomingMessage) -> None:
        record = letter_record(
            queue,
            message.body,
            dict(message.headers or {}),
            message_id=message.message_id,
            correlation_id=message.correlation_id,
            content_type=message.content_type,
            now=utcnow(),
        )
        try:
            outcome = await letters_repo.keep(self.db, record, message.body)
        except Exception:
            log.exception("dead letter not stored; it goes back to its queue", extra={"queue": queue})
            await asyncio.sleep(STORE_FAILURE_BACKOFF_SECONDS)
            await message.nack(requeue=True)
            return
        await message.ack()
        DEAD_LETTERS_KEPT.labels(queue, outcome).inc()
        if outcome != "duplicate":
            log.warning(
                "dead letter kept",
                extra={"queue": queue, "letter_id": record["_id"], "outcome": outcome, "attempts": record["attempts"]},
            )

    async def refresh_gauge(self) -> None:
        counts = await letters_repo.count_dead_by_queue(self.db)
        for queue in {*self.queues, *counts}:
            DEAD_LETTERS.labels(queue).set(counts.get(queue, 0))
