"""Two gateway replicas: `python -m mailstream_inbox` as a second real process next to the package's gateway, on the
same broker and database.

- A key revoked through one replica is refused by the other at once (`api_key.revoked` on the replica queues),
  although the other cached it for far longer (`INBOX_API_KEY_CACHE_SECONDS=300`), and its open streams end.
- Both replicas journal every live event, once between them, under the same SSE id; a client resumes on the
  other replica with the id it got from the first (that replica keeps nothing in memory, so this replay is the
  database's).

The replica is ready (`/readyz`) only once its replica queue is bound, so events published after that reach it.
A stream on the replica counts as open once it sent its first `id:` (which it does after subscribing).
"""

import asyncio

import httpx
import pytest

from mailstream_inbox.repositories import live_events as live_events_repo
from tests.inbox.live_support import changed, event_id_of, journaled, streaming, subscribed
from tests.support.processes import ServiceProcess, free_port
from tests.support.waiting import wait_for


@pytest.fixture(scope="module")
def replica(backends, tmp_path_factory):
    port = free_port()
    process = ServiceProcess(
        "inbox-replica",
        "mailstream_inbox",
        {
            "AMQP_URL": backends.amqp_url,
            "MONGODB_URI": backends.mongodb_uri,
            "MONGODB_DATABASE": f"{backends.database}_inbox",  # the package gateway's
            "INBOX_HTTP_PORT": str(port),
            "INBOX_ROLE": "api",  # the package's gateway owns the work queues
            "INBOX_API_KEY_CACHE_SECONDS": "300",
            "INBOX_EVENTS_MEMORY_MAX": "0",  # replays come from the database here (the package gateway: memory)
            "SHUTDOWN_GRACE_SECONDS": "5",
        },
        f"http://127.0.0.1:{port}",
        tmp_path_factory.mktemp("inbox-replica"),
    )
    process.start()
    yield process
    process.stop()


async def opened(stream) -> None:
    async def probe() -> bool:
        return stream.last_id is not None

    await wait_for(probe, what="the stream's first id")


async def test_a_key_revoked_through_one_replica_is_refused_by_the_other_at_once(inbox_gateway, replica, account):
    created = (await account.admin.post("/v1/api-keys", json={"role": "agent", "name": "short-lived"})).json()
    headers = {"Authorization": f"Bearer {created['api_key']}"}
    async with httpx.AsyncClient(base_url=replica.ops_url, headers=headers, timeout=10) as other:
        assert (await other.get("/v1/topics")).status_code == 200  # the replica trusts it for 300 s from now
        async with other.stream("GET", "/v1/events", timeout=httpx.Timeout(10, read=30)) as events:
            lines = events.aiter_lines()
            assert (await anext(lines)).startswith("retry:")

            revoked = await account.admin.delete(f"/v1/api-keys/{created['id']}")  # through the package gateway
            assert revoked.status_code == 204

            async def refused() -> bool:
                return (await other.get("/v1/topics")).status_code == 401

            await wait_for(refused, timeout=10, what="the other replica to refuse the revoked key")

            async def drained() -> None:
                async for _line in lines:
                    pass

            await asyncio.wait_for(drained(), 10)  # the stream opened with the key ends (keep-alives would not)
        assert (await other.get("/v1/me")).status_code == 401
    assert (await account.admin.get("/v1/topics")).status_code == 200, "other keys are unaffected"


async def test_a_client_resumes_on_the_other_replica_with_the_same_ids(inbox_gateway, replica, broker, account):
    headers = {"Authorization": f"Bearer {account.agent_key}"}
    async with httpx.AsyncClient(base_url=replica.ops_url, headers=headers, timeout=10) as other:
        async with streaming(account.agent) as here, streaming(other) as there:
            await subscribed(inbox_gateway, account.account_id)
            await opened(there)
            first = changed(account.account_id, "first")
            await broker.publish(first)
            (_, _, id_here), (_, _, id_there) = await here.next(), await there.next()
            assert event_id_of(id_here) == first.event_id
            assert id_here == id_there, "both replicas hand out the journal's id"
        journal = inbox_gateway.db[live_events_repo.LIVE_EVENTS]
        assert await journal.count_documents({"event_id": first.event_id}) == 1

        missed = [changed(account.account_id, "missed 1"), changed(account.account_id, "missed 2")]
        for event in missed:
            await broker.publish(event)
        await journaled(inbox_gateway, account.account_id, *missed)
        # The replica may not have fanned them out yet: then they reach its hub after the replay, and are dropped.
        async with streaming(other, headers={"Last-Event-ID": id_here}) as resumed:
            replayed = [await resumed.next() for _ in missed]
            assert [event_id_of(sse_id) for _, _, sse_id in replayed] == [e.event_id for e in missed]
            marker = changed(account.account_id, "marker")
            await broker.publish(marker)
            assert (await resumed.next())[1]["conversation_id"] == "marker"
            assert resumed.events.empty()
