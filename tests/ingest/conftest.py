"""Ingest running in-process (in the test session's event loop) against a RabbitMQ vhost of its own.

Each module that needs the real service gets a private vhost, so what ingest publishes (inbox.store, ...) never
reaches other services' tests, and the broker-outage test can cut off its vhost without touching anyone else.
"""

import asyncio
import contextlib
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import quote, urlsplit, urlunsplit

import aio_pika
import httpx
import pytest
from pymongo.asynchronous.database import AsyncDatabase

from mailstream_ingest import main as ingest_main
from mailstream_ingest.repositories import stream_routes
from mailstream_ingest.settings import IngestSettings
from tests.support.processes import free_port
from tests.support.waiting import wait_for

VERP_SECRET = "ingest-test-verp-secret"
INBOUND_DOMAIN = "in.mailstream.test"


def rabbitmqctl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, text=True, timeout=60)


def can_manage_vhosts(amqp_url: str) -> bool:
    """rabbitmqctl reaches only a broker on this machine (scripts/deps.sh starts one; CI uses it)."""
    return urlsplit(amqp_url).hostname in ("127.0.0.1", "localhost") and shutil.which("rabbitmqctl") is not None


@contextlib.contextmanager
def private_vhost(amqp_url: str):
    parts = urlsplit(amqp_url)
    name = f"mailstream-ingest-test-{uuid.uuid4().hex[:8]}"
    rabbitmqctl("add_vhost", name)
    rabbitmqctl("set_permissions", "-p", name, parts.username or "guest", ".*", ".*", ".*")
    try:
        yield name, urlunsplit(parts._replace(path="/" + quote(name, safe="")))
    finally:
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", name], check=False, capture_output=True)


@pytest.fixture(scope="module")
def vhost(backends):
    """A private vhost where the broker is local; else the session's own (tests then filter by mail id)."""
    if not can_manage_vhosts(backends.amqp_url):
        yield urlsplit(backends.amqp_url).path.lstrip("/") or "/", backends.amqp_url
        return
    with private_vhost(backends.amqp_url) as found:
        yield found


@dataclass
class RunningIngest:
    settings: IngestSettings
    smtp_port: int
    ops_url: str
    amqp_url: str
    stop: asyncio.Event
    task: asyncio.Task


@contextlib.asynccontextmanager
async def run_ingest(amqp_url: str, db: AsyncDatabase, mongodb_uri: str, **overrides) -> AsyncIterator[RunningIngest]:
    smtp_port, ops_port = overrides.pop("INGEST_SMTP_PORT", None) or free_port(), free_port()
    env = {
        "AMQP_URL": amqp_url,
        "MONGODB_URI": mongodb_uri,
        "MONGODB_DATABASE": db.name,
        "MAILSTREAM_VERP_SECRET": VERP_SECRET,
        "MAILSTREAM_INBOUND_DOMAIN": INBOUND_DOMAIN,
        "INGEST_SMTP_PORT": smtp_port,
        "INGEST_OPS_PORT": ops_port,
        "INGEST_AUTH_ENABLED": False,
        "SHUTDOWN_GRACE_SECONDS": 5,
        **overrides,
    }
    settings = IngestSettings.model_validate(env)
    stop = asyncio.Event()
    task = asyncio.create_task(ingest_main.main(stop, settings))
    ops_url = f"http://127.0.0.1:{ops_port}"

    async def ready() -> bool:
        if task.done():
            task.result()
        with contextlib.suppress(httpx.HTTPError):
            async with httpx.AsyncClient() as client:
                return (await client.get(f"{ops_url}/readyz", timeout=1)).status_code == 200
        return False

    await wait_for(ready, timeout=30, what="ingest /readyz")
    try:
        yield RunningIngest(settings, smtp_port, ops_url, amqp_url, stop, task)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def take_messages(
    amqp_url: str, queue: str, count: int, *, timeout: float = 15, correlation_ids: set[str] | None = None
) -> list[aio_pika.abc.AbstractIncomingMessage]:
    """Take `count` messages off a queue (acknowledged), waiting for them to arrive; with `correlation_ids`,
    only those of these mails count (others left by earlier tests are taken and dropped)."""
    connection = await aio_pika.connect(amqp_url)
    taken: list = []
    try:
        channel = await connection.channel()
        declared = await channel.get_queue(queue, ensure=True)

        async def probe():
            message = await declared.get(no_ack=True, fail=False)
            if message is not None and (correlation_ids is None or message.correlation_id in correlation_ids):
                taken.append(message)
            return len(taken) >= count

        await wait_for(probe, timeout=timeout, interval=0.02, what=f"{count} message(s) on {queue}")
    finally:
        await connection.close()
    return taken


async def queue_depth(amqp_url: str, queue: str) -> int:
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, passive=True)
        return declared.declaration_result.message_count or 0
    finally:
        await connection.close()


async def add_stream(db: AsyncDatabase, *, address: str = "support@acme.example", deleted: bool = False) -> dict:
    """A stream as ingest knows it: a document of its own `stream_routes` projection (as `stream.changed` leaves it)."""
    stream_id = uuid.uuid4().hex
    doc = {
        "_id": stream_id,
        "account_id": uuid.uuid4().hex,
        "topic_id": uuid.uuid4().hex,
        "address": address,
        "forwarding_address": f"fwd-{stream_id[:12]}@{INBOUND_DOMAIN}",
        "deleted": deleted,
    }
    await db[stream_routes.COLLECTION].insert_one(
        {
            "_id": stream_id,
            "forwarding_address": doc["forwarding_address"],
            "account_id": doc["account_id"],
            "stream_address": address.lower(),
            "live": not deleted,
            "version": 1,
        }
    )
    return doc


@pytest.fixture
async def smtp_only(vhost, mongo_db, backends):
    async with run_ingest(
        vhost[1],
        mongo_db,
        backends.mongodb_uri,
        INGEST_ROLE="smtp",
        INGEST_MAX_MESSAGE_BYTES=20_000,
        INGEST_MAX_RECIPIENTS=3,
    ) as running:
        yield running
