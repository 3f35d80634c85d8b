"""Broker outage: while RabbitMQ cannot confirm, DATA gets 451 (the sender retries); once it is back, every mail
that got a 250 is on the queue, and the retried one is accepted.

The outage is real but confined to a private vhost: its connection limit goes to 0 and its connections are closed
with rabbitmqctl, so the shared RabbitMQ keeps serving everyone else.
"""

import httpx
import pytest

from mailstream_common import topology
from tests.ingest.conftest import (
    add_stream,
    can_manage_vhosts,
    private_vhost,
    rabbitmqctl,
    run_ingest,
    take_messages,
)
from tests.ingest.smtp_client import send
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

RAW = b"From: Jane <jane@customer.example>\r\nTo: support@acme.example\r\nSubject: outage\r\n\r\nHello\r\n"


def _close_connections(vhost: str) -> None:
    listed = rabbitmqctl("list_connections", "--no-table-headers", "vhost", "pid").stdout
    for line in listed.splitlines():
        parts = line.split("\t")
        if len(parts) == 2 and parts[0] == vhost:
            rabbitmqctl("close_connection", parts[1], "ingest outage test")


async def _readyz(ops_url: str) -> int:
    async with httpx.AsyncClient() as client:
        return (await client.get(f"{ops_url}/readyz", timeout=2)).status_code


async def test_broker_outage_gives_451_and_loses_nothing(backends, mongo_db):
    if not can_manage_vhosts(backends.amqp_url):
        pytest.skip("the outage is made with rabbitmqctl, which reaches only a local broker")
    with private_vhost(backends.amqp_url) as (vhost, amqp_url):
        async with run_ingest(
            amqp_url, mongo_db, backends.mongodb_uri, INGEST_ROLE="smtp", INGEST_CONFIRM_TIMEOUT_SECONDS=2
        ) as running:
            stream = await add_stream(mongo_db)
            rcpt = [stream["forwarding_address"]]
            before = await send(running.smtp_port, "jane@customer.example", rcpt, RAW)
            accepted = {before.mail_id}

            rabbitmqctl("set_vhost_limits", "-p", vhost, '{"max-connections": 0}')
            try:
                _close_connections(vhost)

                async def not_ready():
                    return await _readyz(running.ops_url) == 503

                await wait_for(not_ready, timeout=15, what="ingest to notice the outage")
                during = await send(running.smtp_port, "jane@customer.example", rcpt, RAW)
                assert during.data is not None and during.data[0] == 451
                assert b"4.3.0" in during.data[1]
            finally:
                rabbitmqctl("clear_vhost_limits", "-p", vhost)

            async def ready():
                return await _readyz(running.ops_url) == 200

            await wait_for(ready, timeout=30, what="ingest to reconnect")
            retried = await send(running.smtp_port, "jane@customer.example", rcpt, RAW)
            accepted.add(retried.mail_id)

            messages = await take_messages(amqp_url, topology.INGEST_ANALYSE.name, 2, correlation_ids=accepted)
            assert {m.correlation_id for m in messages} == accepted
