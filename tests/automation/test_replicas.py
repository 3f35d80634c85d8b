"""Two real automation processes on one database and broker: a rule changed through one replica's API is what the
other replica uses for the very next message it handles, although it had the old rules cached."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from pymongo import AsyncMongoClient

from mailstream_common.broker import Broker
from mailstream_common.contracts import ConversationActionsRequested
from tests.automation.conftest import gateway_headers
from tests.automation.support import CommandTap, automation_process, stored_message
from tests.support.backends import Backends, isolated_vhost
from tests.support.processes import ServiceProcess
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration


def tagging_rule(tag: str) -> dict:
    return {"name": f"tag {tag}", "conditions": [], "actions": [{"type": "add_tags", "tags": [tag]}]}


class Replicas:
    def __init__(self, backends: Backends, amqp_url: str, database: str, log_dir: Path) -> None:
        self.make = lambda name: automation_process(name, amqp_url, backends.mongodb_uri, database, log_dir)

    async def start(self, name: str) -> ServiceProcess:
        return await asyncio.to_thread(self.make(name).start)


@pytest.fixture
async def isolated(backends: Backends, mongo_client: AsyncMongoClient) -> AsyncIterator[tuple[str, str]]:
    """A vhost and a database of this test's own: no other test's messages reach these processes' queue."""
    database = f"{backends.database}_automation_replicas_{uuid.uuid4().hex[:6]}"
    with isolated_vhost(backends.amqp_url) as amqp_url:
        yield amqp_url, database
    await mongo_client.drop_database(database)


async def test_a_rule_changed_through_one_replica_is_used_by_the_other_at_once(
    isolated: tuple[str, str], backends: Backends, mongo_client: AsyncMongoClient, tmp_path: Path
):
    amqp_url, database = isolated
    replicas = Replicas(backends, amqp_url, database, tmp_path)
    account_id = uuid.uuid4().hex
    broker = Broker(amqp_url, service="tests")
    await broker.connect()
    tap = await CommandTap(broker).start()
    processes: list[ServiceProcess] = []

    async def tags_for_next_message(rules: int = 1) -> dict[str, list[str]]:
        """What the next message is tagged with, by rule name, once `rules` rules have asked."""
        message = stored_message(account_id)
        await broker.publish(message)

        async def commands() -> list[ConversationActionsRequested]:
            received = tap.for_message(message.message_id)
            return received if len(received) >= rules else []

        received = await wait_for(commands, what=f"{rules} command(s) for {message.message_id}")
        return {c.rule_name: [tag for a in c.actions for tag in a.tags] for c in received}  # type: ignore[union-attr]

    try:
        # Replica B alone consumes: it handles every message of this test.
        b = await replicas.start("automation-b")
        processes.append(b)
        async with httpx.AsyncClient(base_url=b.ops_url, headers=gateway_headers(account_id), timeout=10) as api_b:
            created = await api_b.post("/v1/automation/rules", json=tagging_rule("v1"))
            assert created.status_code == 201, created.text
        rule_id = created.json()["id"]
        assert await tags_for_next_message() == {"tag v1": ["v1"]}

        # B has cached the rules: an edit behind the API's back (no new revision) goes unseen.
        await mongo_client[database]["automation_rules"].update_one(
            {"_id": rule_id}, {"$set": {"actions": [{"type": "add_tags", "tags": ["unseen"]}]}}
        )
        assert await tags_for_next_message() == {"tag v1": ["v1"]}

        # Replica A serves the API calls, then leaves, so that the next message can only be B's.
        a = await replicas.start("automation-a")
        processes.append(a)
        async with httpx.AsyncClient(base_url=a.ops_url, headers=gateway_headers(account_id), timeout=10) as api_a:
            changed = await api_a.patch(f"/v1/automation/rules/{rule_id}", json=tagging_rule("v2"))
            assert changed.status_code == 200, changed.text
            added = await api_a.post("/v1/automation/rules", json=tagging_rule("second"))
            assert added.status_code == 201, added.text
        await asyncio.to_thread(a.stop)
        assert await tags_for_next_message(rules=2) == {"tag v2": ["v2"], "tag second": ["second"]}

    finally:
        await tap.stop()
        await broker.close(grace=5)
        for process in processes:
            await asyncio.to_thread(process.stop)
    for process in processes:
        assert process.proc is not None and process.proc.returncode == 0, process.logs()
