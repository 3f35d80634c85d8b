"""`GET /v1/events`: broker events reach the SSE clients of their own account only, over real HTTP and AMQP."""

import asyncio
import contextlib
import json
from datetime import UTC, datetime

import httpx
from httpx_sse import aconnect_sse

from mailstream_common.contracts import Address, ConversationChanged, MessageDeliveryChanged, MessageStored
from tests.support.waiting import wait_for


@contextlib.asynccontextmanager
async def listening(client: httpx.AsyncClient):
    """Read the client's event stream in the background; yields a queue of (event name, data)."""
    received: asyncio.Queue = asyncio.Queue()

    async def read() -> None:
        async with aconnect_sse(client, "GET", "/v1/events", timeout=httpx.Timeout(10, read=None)) as source:
            assert source.response.status_code == 200
            assert source.response.headers["content-type"].startswith("text/event-stream")
            async for event in source.aiter_sse():
                if not event.data:  # the opening `retry:` field carries no event
                    continue
                received.put_nowait((event.event, json.loads(event.data), event.id))

    task = asyncio.create_task(read())
    try:
        yield received
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def message_stored(account_id: str) -> MessageStored:
    return MessageStored(
        account_id=account_id,
        topic_id="t1",
        stream_id="s1",
        conversation_id="c1",
        message_id="m-" + account_id[:8],
        direction="inbound",
        is_first_message=True,
        **{"from": Address(name="Customer", address="customer@example.com")},
        subject="Where is my order?",
        text="a long body that is not sent to live clients",
        received_at=datetime.now(UTC),
    )


async def next_event(queue: asyncio.Queue, timeout: float = 30.0):
    return await asyncio.wait_for(queue.get(), timeout)


async def test_events_reach_their_own_account_only(inbox_gateway, broker, account, other_account):
    hub = inbox_gateway.app.state.live
    async with listening(account.agent) as mine, listening(other_account.admin) as theirs:

        async def both_connected() -> bool:
            return hub.client_count(account.account_id) == 1 and hub.client_count(other_account.account_id) == 1

        await wait_for(both_connected, what="both SSE clients to subscribe")

        stored = message_stored(account.account_id)
        await broker.publish(stored)
        name, data, event_id = await next_event(mine)
        assert name == "message.received"
        assert event_id.endswith("-" + stored.event_id)  # the journal key: "<ms>-<event id>" (test_replay.py)
        assert data["message_id"] == stored.message_id
        assert data["conversation_id"] == "c1"
        assert data["subject"] == "Where is my order?"
        assert data["from"] == {"name": "Customer", "address": "customer@example.com"}
        assert "text" not in data

        await broker.publish(
            MessageDeliveryChanged(
                account_id=account.account_id, conversation_id="c1", message_id="m2", status="failed", detail="550"
            )
        )
        name, data, _ = await next_event(mine)
        assert (name, data["status"], data["detail"]) == ("message.delivery_changed", "failed", "550")

        # Only now a marker for the other account: had it been given the first account's events, they would be
        # in its stream ahead of the marker.
        await broker.publish(
            ConversationChanged(
                account_id=other_account.account_id, conversation_id="c9", status="closed", changed_by="system"
            )
        )
        name, data, _ = await next_event(theirs)
        assert (name, data["conversation_id"], data["status"]) == ("conversation.changed", "c9", "closed")
        assert theirs.empty() and mine.empty()

    async def unsubscribed() -> bool:
        return hub.client_count(account.account_id) == 0 and hub.client_count(other_account.account_id) == 0

    await wait_for(unsubscribed, what="disconnected clients to be cleaned up")


async def test_keep_alive_comments_and_no_events_without_a_key(inbox_gateway, account, anonymous, monkeypatch):
    monkeypatch.setattr(inbox_gateway.settings, "sse_keepalive_seconds", 0.5)
    async with anonymous:
        assert (await anonymous.get("/v1/events")).status_code == 401
    lines: list[str] = []
    async with account.admin.stream("GET", "/v1/events", timeout=httpx.Timeout(10, read=10)) as response:
        assert response.headers["cache-control"] == "no-cache"
        async for line in response.aiter_lines():
            lines.append(line)
            if line == ": keep-alive":
                break
    assert lines[0].startswith("retry: ")


async def test_a_ticket_opens_the_stream_without_a_header(inbox_gateway, broker, account, anonymous):
    issued = await account.agent.post("/v1/events/tickets")
    assert issued.status_code == 201
    ticket = issued.json()["ticket"]
    assert issued.json()["url"] == f"/v1/events?ticket={ticket}"
    hub = inbox_gateway.app.state.live
    async with anonymous:
        assert (await anonymous.get("/v1/events", params={"ticket": ticket + "x"})).status_code == 401
        async with anonymous.stream("GET", "/v1/events", params={"ticket": ticket}, timeout=httpx.Timeout(10)) as r:
            assert r.status_code == 200
            lines = r.aiter_lines()
            assert (await anext(lines)).startswith("retry:")

            async def subscribed() -> bool:
                return hub.client_count(account.account_id) == 1

            await wait_for(subscribed, what="the ticket holder to subscribe")
            changed = ConversationChanged(
                account_id=account.account_id, conversation_id="c7", status="pending", changed_by="system"
            )
            await broker.publish(changed)
            async for line in lines:
                if line.startswith("data:"):
                    assert json.loads(line.removeprefix("data:"))["conversation_id"] == "c7"
                    break
        # once its key is revoked, a ticket opens nothing
        assert (await account.admin.delete(f"/v1/api-keys/{account.agent_key_id}")).status_code == 204
        assert (await anonymous.get("/v1/events", params={"ticket": ticket})).status_code == 401


async def test_an_account_cannot_open_unbounded_streams(inbox_gateway, account, monkeypatch):
    hub = inbox_gateway.app.state.live
    monkeypatch.setattr(hub, "max_clients_per_account", 1)
    async with account.admin.stream("GET", "/v1/events", timeout=httpx.Timeout(10)) as first:
        assert first.status_code == 200
        lines = first.aiter_lines()  # keep a reference: a collected line iterator closes the stream
        assert (await anext(lines)).startswith("retry:")
        refused = await account.agent.get("/v1/events")
        assert refused.status_code == 429
        assert refused.headers["retry-after"] == "10"
