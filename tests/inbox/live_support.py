"""SSE test helpers: read a gateway's event stream in the background, and wait until events are journaled."""

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
from httpx_sse import aconnect_sse

from mailstream_common.contracts import ConversationChanged, Event
from mailstream_inbox.repositories import live_events as live_events_repo
from tests.support.waiting import wait_for


@dataclass
class Stream:
    events: asyncio.Queue = field(default_factory=asyncio.Queue)  # (event name, data, id) of events with data
    last_id: str | None = None  # what EventSource would send as Last-Event-ID (id-only blocks included)

    async def next(self, timeout: float = 30.0) -> tuple[str, dict, str]:
        item = await asyncio.wait_for(self.events.get(), timeout)
        if isinstance(item, Exception):  # the reader failed: say why instead of timing out
            raise item
        return item


@contextlib.asynccontextmanager
async def streaming(
    client: httpx.AsyncClient, *, headers: dict | None = None, params: dict | None = None
) -> AsyncIterator[Stream]:
    stream = Stream()

    async def read() -> None:
        try:
            async with aconnect_sse(
                client,
                "GET",
                "/v1/events",
                headers=dict(headers or {}),
                params=params,
                timeout=httpx.Timeout(10, read=None),
            ) as source:
                assert source.response.status_code == 200, source.response.status_code
                async for sse in source.aiter_sse():
                    stream.last_id = sse.id or stream.last_id
                    if sse.data:
                        stream.events.put_nowait((sse.event, json.loads(sse.data), sse.id))
        except Exception as exc:
            stream.events.put_nowait(exc)

    task = asyncio.create_task(read())
    try:
        yield stream
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def subscribed(gateway, account_id: str, count: int = 1) -> None:
    """Wait until the in-process gateway's hub holds `count` streams of the account."""

    async def probe() -> bool:
        return gateway.app.state.live.client_count(account_id) == count

    await wait_for(probe, what=f"{count} event stream(s) of the account")


async def journaled(gateway, account_id: str, *events: Event) -> None:
    """Wait until some replica journaled every one of `events` (the gateway's database is every replica's)."""

    async def probe() -> bool:
        for event in events:
            entry = live_events_repo.entry_id(account_id, event.event_id)
            if await gateway.db[live_events_repo.LIVE_EVENTS].find_one({"_id": entry}) is None:
                return False
        return True

    await wait_for(probe, what="the gateway to journal the events")


def changed(account_id: str, conversation_id: str, status: str = "open") -> ConversationChanged:
    return ConversationChanged(
        account_id=account_id, conversation_id=conversation_id, status=status, changed_by="system"
    )


def event_id_of(sse_id: str) -> str:
    return sse_id.split("-", 1)[1]
