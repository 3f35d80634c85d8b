"""Back-pressure: refuse new mail with a 4xx while the queues behind ingest are too long, before anything is lost.

Accepting mail faster than the store can take it only moves the backlog from the sending servers (which keep mail
and retry for days) into RabbitMQ (whose disk and memory alarms then block every publisher, replies included). So
the SMTP front door watches the depth of the queues it feeds, and above a limit answers MAIL FROM with a temporary
refusal. It accepts again only once the backlog has fallen below a lower mark, so that a backlog hovering at the limit
does not flip the door open and shut on every check.

`BacklogGate` is the pure decision; `watch_backlog` reads the depths from the broker on an interval.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

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
