"""The sender as a real process (`python -m mailstream_sender`): crash safety, competing workers, the
suppression API and the bounce consumer, and the caches' invalidation by events and by this process's own writes,
through the real broker, database, HTTP and SMTP."""

import dataclasses
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from uuid import uuid4

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from pymongo.asynchronous.database import AsyncDatabase

from mailstream_common import topology
from mailstream_common.broker import Broker
from mailstream_common.contracts import DeliveryReported, DomainChanged, StreamChanged
from tests.sender.conftest import BOUNCE_DOMAIN, add_stream, reply_command
from tests.sender.domains_stub import DomainKey, DomainsStub
from tests.support.backends import Backends, isolated_vhost
from tests.support.processes import ServiceProcess, free_port
from tests.support.service_tokens import GATEWAY_TOKEN, SENDER_TOKEN, service_env
from tests.support.smtp_sink import RecordingSink
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration


class SenderProcesses:
    def __init__(self, backends: Backends, db: AsyncDatabase, relay: RecordingSink, domains: DomainsStub, logs: Path):
        self.env_base = {
            "AMQP_URL": backends.amqp_url,
            "MONGODB_URI": backends.mongodb_uri,
            "MONGODB_DATABASE": db.name,
            **service_env(),
            "MAILSTREAM_BOUNCE_DOMAIN": BOUNCE_DOMAIN,
            "DOMAINS_URL": domains.url,
            "SENDER_SMTP_HOST": "127.0.0.1",
            "SENDER_SMTP_PORT": str(relay.port),
            "SENDER_RETRY_BASE_SECONDS": "0.1",
            "SHUTDOWN_GRACE_SECONDS": "3",
            "CONSUMER_PREFETCH": "4",
        }
        self.logs = logs
        self.running: list[ServiceProcess] = []

    def start(self, **env: str) -> tuple[ServiceProcess, str]:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        name = f"sender-{uuid4().hex[:6]}"
        process = ServiceProcess(
            name, "mailstream_sender", {**self.env_base, "SENDER_HTTP_PORT": str(port), **env}, url, self.logs
        )
        self.running.append(process)  # before start(): a worker that never gets ready is still stopped
        process.start()
        return process, url

    def start_many(self, count: int) -> list[ServiceProcess]:
        """Start `count` workers at once (their start-up is mostly imports; in parallel it costs one)."""
        with ThreadPoolExecutor(count) as pool:
            return [process for process, _ in pool.map(lambda _: self.start(), range(count))]

    def stop_all(self) -> None:
        for process in self.running:
            process.stop(10)


@pytest.fixture(scope="module")
def own_vhost(backends: Backends) -> Iterator[Backends]:
    """A vhost of this module's own: commands other suites left on the session's `sender.replies` (forwarding
    checks published by inbox tests, say) must not reach these workers and their relay."""
    with isolated_vhost(backends.amqp_url) as amqp_url:
        yield dataclasses.replace(backends, amqp_url=amqp_url)


@pytest.fixture
async def broker(own_vhost: Backends) -> AsyncIterator[Broker]:
    connected = Broker(own_vhost.amqp_url, service="tests")
    await connected.connect()
    yield connected
    await connected.close(grace=5)


@pytest.fixture
def processes(own_vhost, mongo_db, relay, domains, tmp_path) -> Iterator[SenderProcesses]:
    group = SenderProcesses(own_vhost, mongo_db, relay, domains, tmp_path)
    yield group
    group.stop_all()


async def _states(db: AsyncDatabase, ids: list[str]) -> dict[str, str]:
    return {d["_id"]: d["state"] async for d in db["sender_deliveries"].find({"_id": {"$in": ids}})}


def _relay_has(relay: RecordingSink, count: int):
    async def probe():
        return len(relay.messages()) >= count

    return probe


async def _queues_empty(broker: Broker) -> bool:
    spec = topology.SENDER_REPLIES
    channel = await broker.connection.channel()
    try:
        for name in [spec.name, *(spec.retry_queue(d) for d in spec.retry_delays)]:
            queue = await channel.declare_queue(name, passive=True)
            if queue.declaration_result.message_count:
                return False
    finally:
        await channel.close()
    return True


async def test_crash_and_graceful_stop_lose_and_duplicate_nothing_across_competing_workers(
    processes, broker, mongo_db, relay, domains, acme_key
):
    """Three workers share the queue; one is SIGKILLed and one stopped with SIGTERM while commands are in
    flight and on the retry queues; the third then delivers every command exactly once."""
    first, second, _third = processes.start_many(3)
    stream = await add_stream(mongo_db, acme_key.account_id)

    sent_before = [reply_command(acme_key.account_id, stream["_id"]) for _ in range(6)]
    for command in sent_before:
        await broker.publish(command)
    relay.wait_for(6)

    # The relay now defers everything: commands pile up in-flight and on the retry queues, none accepted.
    relay.answer_always("451 4.3.2 System not accepting network messages")
    pending = [reply_command(acme_key.account_id, stream["_id"]) for _ in range(10)]
    for command in pending:
        await broker.publish(command)
    ids = [c.message_id for c in pending]

    async def all_deferred():
        states = await _states(mongo_db, ids)
        return len(states) == len(ids) and set(states.values()) <= {"deferred", "sending"}

    await wait_for(all_deferred, timeout=20, what="every pending command tried once")
    first.kill()  # SIGKILL: no graceful shutdown
    assert second.stop(20) == 0  # SIGTERM: finishes or requeues its in-flight commands
    relay.answer_always(None)

    async def all_sent():
        states = await _states(mongo_db, ids + [c.message_id for c in sent_before])
        return len(states) == 16 and set(states.values()) == {"sent"}

    await wait_for(all_sent, timeout=40, what="every command sent after the crash")
    await wait_for(lambda: _queues_empty(broker), timeout=20, what="no command left on any sender queue")
    message_ids = sorted(m.message()["Message-ID"] for m in relay.messages())
    assert message_ids == sorted(c.message_id_header for c in sent_before + pending)  # each exactly once


def _headers(account_id: str, role: str = "admin", token: str = GATEWAY_TOKEN) -> dict[str, str]:
    return {"X-Internal-Token": token, "X-Account-Id": account_id, "X-Role": role}


async def _final_state(db: AsyncDatabase, message_id: str, what: str) -> dict:
    async def final():
        doc = await db["sender_deliveries"].find_one({"_id": message_id})
        return doc if doc and doc["state"] in ("sent", "failed") else None

    return await wait_for(final, what=what)


async def test_suppression_api_bounces_and_blocking(processes, broker, mongo_db, relay, acme_key):
    """Every suppression change made through this process applies to its very next mail: the cached list lives for
    an hour here, so only the invalidation by the write itself can explain it."""
    _, url = processes.start(SENDER_SUPPRESSION_CACHE_SECONDS="3600")
    account = acme_key.account_id
    stream = await add_stream(mongo_db, account)
    api = httpx.AsyncClient(base_url=url, headers=_headers(account), timeout=10)
    try:
        assert (await api.get("/healthz")).status_code == 200
        assert (await api.get("/readyz")).json()["ready"] is True
        assert "mailstream_broker_consumed_total" in (await api.get("/metrics")).text
        assert (await api.get("/v1/suppressions")).json() == {"items": [], "next_cursor": None}
        warm_up = reply_command(account, stream["_id"])  # the process now holds the account's (empty) list
        await broker.publish(warm_up)
        assert (await _final_state(mongo_db, warm_up.message_id, "the warm-up mail"))["state"] == "sent"

        # Auth: only the gateway's credential; writes need admin; another account sees nothing.
        assert (await api.get("/v1/suppressions", headers=_headers(account, token="nope"))).status_code == 401
        # The sender's own credential is valid but not one the public routes accept.
        assert (await api.get("/v1/suppressions", headers=_headers(account, token=SENDER_TOKEN))).status_code == 403
        agent_post = await api.post(
            "/v1/suppressions", json={"address": "x@example.net"}, headers=_headers(account, "agent")
        )
        assert agent_post.status_code == 403
        assert (await api.post("/v1/suppressions", json={"address": "not an address"})).status_code == 422

        created = await api.post("/v1/suppressions", json={"address": "Kana@Example.net", "reason": "complained"})
        assert created.status_code == 201, created.text
        assert created.json()["address"] == "kana@example.net" and created.json()["source"] == "api"
        other = httpx.AsyncClient(base_url=url, headers=_headers("another-account"), timeout=10)
        assert (await other.get("/v1/suppressions/kana@example.net")).status_code == 404
        assert (await other.delete("/v1/suppressions/kana@example.net")).status_code == 404
        await other.aclose()

        blocked = reply_command(account, stream["_id"])
        await broker.publish(blocked)

        async def blocked_failed():
            doc = await mongo_db["sender_deliveries"].find_one({"_id": blocked.message_id})
            return doc and doc["state"] == "failed" and "suppression list (complained)" in doc["detail"]

        await wait_for(blocked_failed, what="the reply to a suppressed address refused")
        assert relay.attempts == 1  # the warm-up mail only

        assert (await api.delete("/v1/suppressions/kana@example.net")).status_code == 204
        assert (await api.delete("/v1/suppressions/kana@example.net")).status_code == 404
        allowed = reply_command(account, stream["_id"])
        await broker.publish(allowed)
        relay.wait_for(2)

        # Two hard bounces (for two different sent mails) put the address on the list.
        second = reply_command(account, stream["_id"])
        await broker.publish(second)
        relay.wait_for(3)
        for command in (allowed, second):

            async def is_sent(command=command):
                return (await _states(mongo_db, [command.message_id])).get(command.message_id) == "sent"

            await wait_for(is_sent)
            bounce = DeliveryReported(
                message_id=command.message_id,
                status="bounced",
                permanent=True,
                smtp_code=550,
                recipient="kana@example.net",
                detail="550 5.1.1 user unknown",
            )
            await broker.publish(bounce)
            await broker.publish(bounce.model_copy(update={"event_id": uuid4().hex}))  # a duplicate counts once

        async def suppressed_by_bounces():
            items = (await api.get("/v1/suppressions")).json()["items"]
            return items and items[0]["source"] == "bounces" and items[0]["hard_bounces"] == 2

        await wait_for(suppressed_by_bounces, what="the address suppressed after two hard bounces")
        after_bounces = reply_command(account, stream["_id"])
        await broker.publish(after_bounces)
        refused = await _final_state(mongo_db, after_bounces.message_id, "the mail after the bounces")
        assert refused["state"] == "failed" and "hard bounced 2 times" in refused["detail"]
        assert relay.attempts == 3
    finally:
        await api.aclose()


async def _metric(url: str, line_prefix: str) -> float:
    async with httpx.AsyncClient(timeout=10) as http:
        text = (await http.get(f"{url}/metrics")).text
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(line_prefix + " "))


STREAM_INVALIDATIONS = 'mailstream_sender_cache_invalidations_total{cache="streams"}'


@pytest.mark.parametrize(
    ("change", "stored", "reason"),
    [
        ("deleted", {"deleted": True}, "does not exist"),
        ("updated", {"allow_agent_send": False}, "does not allow agents to send"),
    ],
)
async def test_stream_changed_event_stops_sending_at_once(
    processes, broker, mongo_db, relay, acme_key, change, stored, reason
):
    """The stream record is cached for an hour here: a change in the database alone does not reach the worker,
    the `stream.changed` event inbox publishes after its write does, for the very next mail."""
    _, url = processes.start(SENDER_STREAM_CACHE_SECONDS="3600")
    stream = await add_stream(mongo_db, acme_key.account_id)
    first = reply_command(acme_key.account_id, stream["_id"])
    await broker.publish(first)
    assert (await _final_state(mongo_db, first.message_id, "the first mail"))["state"] == "sent"

    # The projection alone changes (as if the shared projection queue applied it): the cached record still wins.
    await mongo_db["stream_settings"].update_one({"_id": stream["_id"]}, {"$set": {**stored, "version": 2}})
    cached = reply_command(acme_key.account_id, stream["_id"])
    await broker.publish(cached)
    cached_state = await _final_state(mongo_db, cached.message_id, "a mail from the cached record")
    assert cached_state["state"] == "sent", cached_state["detail"]

    before = await _metric(url, STREAM_INVALIDATIONS)
    event = {**stream, **stored}
    await broker.publish(
        StreamChanged(
            change=change,
            version=2,
            deleted=event["deleted"],
            display_name=event["display_name"],
            account_id=event["account_id"],
            topic_id=event["topic_id"],
            stream_id=event["_id"],
            address=event["address"],
            forwarding_address=event["forwarding_address"],
            allow_agent_send=event["allow_agent_send"],
        )
    )

    async def event_applied():
        return await _metric(url, STREAM_INVALIDATIONS) > before

    await wait_for(event_applied, what="the worker applied stream.changed")
    after = reply_command(acme_key.account_id, stream["_id"])
    await broker.publish(after)
    refused = await _final_state(mongo_db, after.message_id, "the mail after the event")
    assert refused["state"] == "failed" and reason in refused["detail"]
    assert len(relay.messages()) == 2


async def test_domain_changed_event_makes_the_next_mail_use_the_rotated_key(
    processes, broker, mongo_db, relay, domains, acme_key, dkim_dns
):
    processes.start()
    stream = await add_stream(mongo_db, acme_key.account_id)
    first = reply_command(acme_key.account_id, stream["_id"])
    await broker.publish(first)
    [mail] = relay.wait_for(1)
    assert b"s=ms1;" in mail.data and dkim_dns.verify_with_dkimpy(mail.data) == [True]

    rotated = ed25519.Ed25519PrivateKey.generate()
    domains.keys["acme.test"] = DomainKey("acme.test", acme_key.account_id, "ms1", acme_key.rsa_key, "ed2", rotated)
    await broker.publish(
        DomainChanged(
            change="key_rotated", account_id=acme_key.account_id, domain_id="d1", name="acme.test", status="verified"
        )
    )

    async def signed_with_the_new_key():
        # The event reaches the worker's replica queue asynchronously: send until a mail shows the new key set.
        count = len(relay.messages())
        await broker.publish(reply_command(acme_key.account_id, stream["_id"]))
        await wait_for(_relay_has(relay, count + 1), what="the next mail at the relay")
        return b"s=ed2;" in relay.messages()[-1].data

    await wait_for(signed_with_the_new_key, timeout=30, what="a mail signed with the rotated key set")
