"""Dead letters end to end: real RabbitMQ, the database and HTTP to the real gateway.

A consumer run by the project's own `Broker` (its ack policy, retry tiers and dead-lettering) fails for good on some
inputs: `Reject` for a customer its "CRM" does not know, a transient error that outlasts `max_attempts` for another.
The gateway's dead-letter keeper takes the copies off `<queue>.dead`; the account's admin lists them with reason,
attempts, origin routing and correlation id, "fixes the cause", requeues, and the consumer processes the message
exactly once. Another account and agent keys see nothing.
"""

import asyncio
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import ClassVar

import aio_pika
import httpx
import pytest_asyncio

from mailstream_common import topology
from mailstream_common.broker import Broker, Delivery, Reject
from mailstream_common.contracts import Event
from mailstream_common.metrics import MESSAGES_CONSUMED
from tests.support.backends import Backends
from tests.support.inbox_gateway import Gateway
from tests.support.waiting import wait_for

from ..conftest import PROBE_QUEUE
from .test_cli_and_keys import run_cli_in_process


class ProbeRequested(Event):
    """A command for the test's consumer: look this customer up (in a "CRM" the test controls)."""

    event_name: ClassVar[str] = "tests.probe_requested"
    account_id: str
    customer: str


PROBE = topology.QueueSpec(PROBE_QUEUE, (ProbeRequested,), retry_delays=(1,), max_attempts=3)


@dataclass
class ProbeConsumer:
    """Fails for customers it does not know: `Reject` for "unknown-*" (can never succeed, as far as it can tell),
    an error it retries for "flaky-*" (until `max_attempts`). `fixed` is the operator's fix."""

    fixed: set[str] = field(default_factory=set)
    processed: list[str] = field(default_factory=list)

    async def handle(self, event: ProbeRequested, delivery: Delivery) -> None:
        if event.customer not in self.fixed:
            if event.customer.startswith("unknown-"):
                raise Reject(f"no CRM record for customer {event.customer}")
            if event.customer.startswith("flaky-"):
                raise RuntimeError("CRM answered 500")
        self.processed.append(event.event_id)


@pytest_asyncio.fixture(loop_scope="session")
async def probe(backends: Backends, inbox_gateway: Gateway) -> AsyncIterator[tuple[ProbeConsumer, Broker]]:
    consumer = ProbeConsumer()
    broker = Broker(backends.amqp_url, service="tests-probe")
    await broker.connect()
    broker.consume(PROBE, consumer.handle, ProbeRequested, prefetch=4)
    await broker.start()
    yield consumer, broker
    await broker.close(grace=5)


def acked() -> float:
    return MESSAGES_CONSUMED.labels(PROBE_QUEUE, "ack")._value.get()


async def letters(client: httpx.AsyncClient, **params) -> list[dict]:
    response = await client.get("/v1/dead-letters", params={"queue": PROBE_QUEUE, **params})
    assert response.status_code == 200, response.text
    return response.json()["items"]


async def dead_letter_of(client: httpx.AsyncClient, message_id: str) -> dict:
    async def listed() -> dict | None:
        return next((item for item in await letters(client) if item["message_id"] == message_id), None)

    return await wait_for(listed, timeout=60, what=f"dead letter {message_id} listed")


async def gauge(gateway: Gateway) -> float:
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=10) as http:
        text = (await http.get("/metrics")).text
    found = re.search(rf'^mailstream_dead_letters{{queue="{re.escape(PROBE_QUEUE)}"}} (\S+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


def retries() -> float:
    return MESSAGES_CONSUMED.labels(PROBE_QUEUE, "retry")._value.get()


async def queue_is_drained(backends: Backends) -> bool:
    """Nothing ready or unacked on the probe queue (a passive declare counts ready messages; the consumer's acks
    are counted separately). The retry tiers are shared by every queue: the tests compare `retries()` instead."""
    connection = await aio_pika.connect(backends.amqp_url)
    try:
        channel = await connection.channel()
        queue = await channel.declare_queue(PROBE_QUEUE, passive=True)
    finally:
        await connection.close()
    return queue.declaration_result.message_count == 0


async def test_a_poison_message_is_listed_requeued_after_the_fix_and_processed_once(
    probe, account, other_account, inbox_gateway, backends
):
    consumer, broker = probe
    dead_before = await gauge(inbox_gateway)
    event = ProbeRequested(account_id=account.account_id, customer="unknown-1", correlation_id="corr-dead-1")
    await broker.publish(event)

    item = await dead_letter_of(account.admin, event.event_id)
    assert item["reason"].startswith("Reject: no CRM record for customer unknown-1")
    assert item["attempts"] == 1 and item["state"] == "dead" and item["requeues"] == 0
    assert item["origin_exchange"] == topology.EVENTS_EXCHANGE
    assert item["origin_routing_key"] == "tests.probe_requested" and item["event"] == "tests.probe_requested"
    assert item["correlation_id"] == "corr-dead-1"
    await wait_for(
        lambda: _true_if(gauge(inbox_gateway), dead_before + 1), timeout=30, what="the gauge counting the letter"
    )

    shown = (await account.admin.get(f"/v1/dead-letters/{item['id']}")).json()
    assert shown["preview"]["customer"] == "unknown-1"
    assert {"name": "x-origin-queue", "value": PROBE_QUEUE} in shown["headers"]

    # Nobody else sees it: another account's admin (404, as for a missing id), an agent of the same account (403).
    assert await letters(other_account.admin) == []
    assert (await other_account.admin.get(f"/v1/dead-letters/{item['id']}")).status_code == 404
    assert (await other_account.admin.post(f"/v1/dead-letters/{item['id']}/requeue")).status_code == 404
    assert (await account.agent.get("/v1/dead-letters")).status_code == 403
    assert (await account.agent.post(f"/v1/dead-letters/{item['id']}/requeue")).status_code == 403

    consumer.fixed.add("unknown-1")  # the cause is fixed: the CRM knows the customer now
    retries_before = retries()
    acked_before = acked()
    requeued = await account.admin.post(f"/v1/dead-letters/{item['id']}/requeue")
    assert requeued.status_code == 200, requeued.text
    assert requeued.json()["state"] == "requeued" and requeued.json()["requeues"] == 1
    assert (await account.admin.post(f"/v1/dead-letters/{item['id']}/requeue")).status_code == 409

    await wait_for(lambda: _true_if_now(acked() >= acked_before + 1), timeout=30, what="the requeued copy acked")
    await wait_for(lambda: queue_is_drained(backends), timeout=30, what="the probe queue drained")
    assert retries() == retries_before  # no copy of it waits in a retry tier
    assert consumer.processed.count(event.event_id) == 1
    assert event.event_id not in {i["message_id"] for i in await letters(account.admin)}
    await wait_for(lambda: _true_if(gauge(inbox_gateway), dead_before), timeout=30, what="the gauge back")


async def test_a_message_that_exhausts_its_retries_dies_with_its_attempts_and_is_requeued_with_its_queue(
    probe, account, backends
):
    consumer, broker = probe
    events = [ProbeRequested(account_id=account.account_id, customer=f"flaky-{i}") for i in range(2)]
    for event in events:
        await broker.publish(event)
    items = [await dead_letter_of(account.admin, event.event_id) for event in events]
    assert all(item["attempts"] == PROBE.max_attempts for item in items)
    assert all(item["reason"].startswith("RuntimeError: CRM answered 500") for item in items)
    # Its origin is the first publication's, not the retry tier it came back from.
    assert all(item["origin_routing_key"] == "tests.probe_requested" for item in items)
    assert all(item["origin_exchange"] == topology.EVENTS_EXCHANGE for item in items)

    consumer.fixed.update({"flaky-0", "flaky-1"})
    retries_before = retries()
    result = await account.admin.post("/v1/dead-letters/requeue", json={"queue": PROBE_QUEUE})
    assert result.status_code == 200, result.text
    assert sorted(result.json()["requeued"]) == sorted(item["id"] for item in items)

    await wait_for(
        lambda: _true_if_now(all(e.event_id in consumer.processed for e in events)), timeout=30, what="both processed"
    )
    await wait_for(lambda: queue_is_drained(backends), timeout=30, what="the probe queue drained")
    assert retries() == retries_before  # no copy of it waits in a retry tier
    assert [consumer.processed.count(e.event_id) for e in events] == [1, 1]
    requeued = await letters(account.admin, state="requeued")
    assert {i["id"] for i in items} <= {i["id"] for i in requeued}


async def test_a_requeued_message_that_fails_again_is_dead_again_with_its_history(probe, account):
    consumer, broker = probe
    event = ProbeRequested(account_id=account.account_id, customer="unknown-again")
    await broker.publish(event)
    item = await dead_letter_of(account.admin, event.event_id)
    assert (await account.admin.post(f"/v1/dead-letters/{item['id']}/requeue")).status_code == 200  # not fixed

    async def dead_again() -> dict | None:
        letter = (await account.admin.get(f"/v1/dead-letters/{item['id']}")).json()
        return letter if letter["state"] == "dead" and letter["requeues"] == 1 else None

    letter = await wait_for(dead_again, timeout=30, what="the letter dead again")
    assert [h["event"] for h in letter["history"]] == ["died", "requeued", "died"]
    assert letter["history"][0]["reason"] == letter["history"][2]["reason"] == item["reason"]
    assert letter["history"][1]["by"].startswith("api_key:")
    assert consumer.processed.count(event.event_id) == 0


async def test_discard_records_the_reason_and_ends_the_letter(probe, account):
    _consumer, broker = probe
    event = ProbeRequested(account_id=account.account_id, customer="unknown-discarded")
    await broker.publish(event)
    item = await dead_letter_of(account.admin, event.event_id)

    assert (await account.agent.post(f"/v1/dead-letters/{item['id']}/discard", json={"reason": "x"})).status_code == 403
    refused = await account.admin.post(f"/v1/dead-letters/{item['id']}/discard", json={"reason": "a\r\nb"})
    assert refused.status_code == 422
    response = await account.admin.post(
        f"/v1/dead-letters/{item['id']}/discard", json={"reason": "test customer, deleted from the CRM"}
    )
    assert response.status_code == 200, response.text
    discarded = response.json()
    assert discarded["state"] == "discarded"
    assert discarded["discard"]["reason"] == "test customer, deleted from the CRM"
    assert discarded["discard"]["by"].startswith("api_key:")
    assert item["id"] not in {i["id"] for i in await letters(account.admin)}
    assert item["id"] in {i["id"] for i in await letters(account.admin, state="discarded")}
    assert (await account.admin.post(f"/v1/dead-letters/{item['id']}/requeue")).status_code == 409


async def test_two_operators_requeueing_one_letter_at_once_requeue_it_once(probe, account, backends):
    consumer, broker = probe
    event = ProbeRequested(account_id=account.account_id, customer="unknown-raced")
    await broker.publish(event)
    item = await dead_letter_of(account.admin, event.event_id)
    consumer.fixed.add("unknown-raced")
    retries_before = retries()
    responses = await asyncio.gather(*(account.admin.post(f"/v1/dead-letters/{item['id']}/requeue") for _ in range(4)))
    assert sorted(r.status_code for r in responses) == [200, 409, 409, 409]
    await wait_for(
        lambda: _true_if_now(event.event_id in consumer.processed), timeout=30, what="the requeued copy processed"
    )
    await wait_for(lambda: queue_is_drained(backends), timeout=30, what="the probe queue drained")
    assert retries() == retries_before  # no copy of it waits in a retry tier
    assert consumer.processed.count(event.event_id) == 1


async def _true_if(value, expected: float) -> bool:
    return await value == expected


async def _true_if_now(condition: bool) -> bool:
    return condition


async def test_the_operator_cli_sees_every_account_and_requeues_and_discards(
    probe, account, other_account, inbox_gateway, backends, monkeypatch, capsys
):
    consumer, broker = probe
    mine = ProbeRequested(account_id=account.account_id, customer="unknown-cli-1")
    theirs = ProbeRequested(account_id=other_account.account_id, customer="unknown-cli-2")
    for event in (mine, theirs):
        await broker.publish(event)
    mine_item = await dead_letter_of(account.admin, mine.event_id)
    theirs_item = await dead_letter_of(other_account.admin, theirs.event_id)
    monkeypatch.setenv("AMQP_URL", backends.amqp_url)

    code, out, _ = await run_cli_in_process(
        inbox_gateway, monkeypatch, capsys, "dead-letters", "list", "--queue", PROBE_QUEUE
    )
    listed = {json.loads(line)["id"]: json.loads(line) for line in out.splitlines()}
    assert code == 0 and {mine_item["id"], theirs_item["id"]} <= set(listed)
    assert listed[theirs_item["id"]]["account_id"] == other_account.account_id

    code, out, _ = await run_cli_in_process(
        inbox_gateway, monkeypatch, capsys, "dead-letters", "show", "--id", mine_item["id"]
    )
    shown = json.loads(out)
    assert code == 0 and shown["preview"]["customer"] == "unknown-cli-1" and shown["history"][0]["event"] == "died"

    code, out, _ = await run_cli_in_process(
        inbox_gateway,
        monkeypatch,
        capsys,
        "dead-letters",
        "discard",
        "--id",
        theirs_item["id"],
        "--reason",
        "spam test",
    )
    assert code == 0 and json.loads(out)["state"] == "discarded"
    discarded = (await other_account.admin.get(f"/v1/dead-letters/{theirs_item['id']}")).json()
    assert discarded["discard"] == {"reason": "spam test", "by": "cli", "at": discarded["discard"]["at"]}

    consumer.fixed.add("unknown-cli-1")
    retries_before = retries()
    code, out, _ = await run_cli_in_process(
        inbox_gateway, monkeypatch, capsys, "dead-letters", "requeue", "--id", mine_item["id"]
    )
    assert code == 0 and json.loads(out) == {"id": mine_item["id"], "outcome": "requeued"}
    await wait_for(lambda: _true_if_now(mine.event_id in consumer.processed), timeout=30, what="processed")
    await wait_for(lambda: queue_is_drained(backends), timeout=30, what="the probe queue drained")
    assert retries() == retries_before  # no copy of it waits in a retry tier
    assert consumer.processed.count(mine.event_id) == 1 and theirs.event_id not in consumer.processed

    code, _, err = await run_cli_in_process(
        inbox_gateway, monkeypatch, capsys, "dead-letters", "discard", "--id", mine_item["id"], "--reason", "late"
    )
    assert code == 1 and "not dead" in err
