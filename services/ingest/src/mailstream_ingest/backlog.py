"""Back-pressure: refuse new mail with a 4xx while the queues behind ingest are too long, before anything is lost.

Accepting mail faster than the store can take it only moves the backlog from the sending servers (which keep mail
and retry for days) into RabbitMQ (whose disk and memory alarms then block every publisher, replies included). So
the SMTP front door watches the depth of the queues it feeds, and above a limit answers MAIL FROM with a temporary
refusal. It accepts again only once the backlog has fallen below a lower mark, so that a backlog hovering at the limit
does not flip the door open and shut on every check.

`BacklogGate` is the pure decision; `watch_backlog` reads the depths from the broker on an interval, through
`QueueDepths`.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

import aio_pika.abc

from mailstream_common import periodic

from . import metrics

log = logging.getLogger(__name__)


@dataclass
class BacklogGate:
    """Open or shut from the latest depths: shut above `limit` messages in all, open again at or below `resume_at`.

    A limit of 0 turns the gate off (always open).
    """

    limit: int
    resume_ratio: float = 0.8
    shut: bool = field(default=False, init=False)

    @property
    def resume_at(self) -> int:
        return int(self.limit * self.resume_ratio)

    def observe(self, depths: Mapping[str, int]) -> bool:
        """Take the depths just read; return True when the gate changed state."""
        if self.limit <= 0:
            return False
        backlog = sum(depths.values())
        was_shut = self.shut
        if backlog > self.limit:
            self.shut = True
        elif backlog <= self.resume_at:
            self.shut = False
        return self.shut != was_shut


ReadDepth = Callable[[str], Awaitable[int]]


class QueueDepths:
    """Reads queue depths (a passive declare) on one channel kept open for it, reopened only when it was closed.

    Not a channel per read: with aio-pika 10.2 on aiormq 7.2 every channel opened and closed leaves about 3.5 KB on
    the connection for good (aio-pika removes its close callback from a new observer of the connection's `closing`,
    which aiormq makes afresh on each access, not from the one it was added to). At two reads a second that was
    ingest's steady +27.7 MB/h in the 30-minute soak (issue 12; docs/reliability/ingest-refusal-memory/).
    The declare goes to the broker every time: aio-pika's own passive `declare_queue` on a robust channel answers
    a name it has seen from its cache, with the old count.
    """

    def __init__(self, connection: aio_pika.abc.AbstractConnection) -> None:
        self._connection = connection
        self._channel: aio_pika.abc.AbstractChannel | None = None

    async def read(self, queue: str) -> int:
        """Messages ready in `queue` now; fails (and the channel is reopened next time) if the queue is absent."""
        if self._channel is None or self._channel.is_closed:
            self._channel = await self._connection.channel()
        underlay = await self._channel.get_underlay_channel()
        declared = await underlay.queue_declare(queue, passive=True)
        return declared.message_count or 0


async def watch_backlog(
    gate: BacklogGate, queues: tuple[str, ...], read_depth: ReadDepth, stop: asyncio.Event, *, interval: float
) -> None:
    """Read each queue's depth every `interval` seconds and feed the gate; a failed read leaves the gate as it was
    (with the broker unreachable, mail is refused anyway: the publish itself fails)."""

    async def check() -> None:
        depths = {queue: await read_depth(queue) for queue in queues}
        for queue, depth in depths.items():
            metrics.DOWNSTREAM_BACKLOG.labels(queue).set(depth)
        if gate.observe(depths):
            metrics.BACKLOG_REFUSING.set(1 if gate.shut else 0)
            if gate.shut:
                log.warning(
                    "backlog above the limit: refusing new mail with 451 until it drains",
                    extra={"depths": depths, "limit": gate.limit, "resume_at": gate.resume_at},
                )
            else:
                log.info("backlog drained: accepting mail again", extra={"depths": depths, "resume_at": gate.resume_at})

    await periodic.run_every(interval, stop, check, name="backlog watch")
