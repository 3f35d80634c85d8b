"""The real process: `python -m mailstream_automation` with its HTTP API, consumer and graceful shutdown."""

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mailstream_common import topology
from mailstream_common.broker import Broker
from tests.automation.conftest import gateway_headers
from tests.automation.support import CommandTap, automation_process, stored_message
from tests.support.backends import Backends
from tests.support.processes import ServiceProcess
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def service(automation_backends: Backends, tmp_path: Path) -> Iterator[ServiceProcess]:
    b = automation_backends
    process = automation_process("automation", b.amqp_url, b.mongodb_uri, f"{b.database}_automation_service", tmp_path)
    process.start()
    try:
        yield process
    finally:
        process.stop()


async def test_the_service_evaluates_stored_messages_and_serves_the_runs(service: ServiceProcess, broker: Broker):
    account_id = uuid.uuid4().hex
    tap = await CommandTap(broker).start()
    async with httpx.AsyncClient(base_url=service.ops_url, headers=gateway_headers(account_id), timeout=10) as api:
        created = await api.post(
            "/v1/automation/rules",
            json={
                "name": "VIP domain",
                "conditions": [{"field": "from_domain", "operator": "equals", "value": "example.net"}],
                "actions": [{"type": "assign", "assignee": "ren"}],
            },
        )
        assert created.status_code == 201, created.text
        rule_id = created.json()["id"]
        # Declared by the service at start-up, so the command is routable before inbox ever runs.
        channel = await broker.connection.channel()
        await channel.declare_queue(topology.INBOX_ACTIONS.name, passive=True)
        await channel.close()

        message = stored_message(account_id)
        await broker.publish(message)
        await broker.publish(message)  # the same event again, as after a redelivery
        [command] = await tap.wait_for_message(message.message_id)
        assert command.rule_id == rule_id and command.actions[0].type == "assign"

        sentinel = stored_message(account_id, from_=None)  # no From: the rule does not fire, but a run is recorded

        async def runs() -> list[dict]:
            response = await api.get(f"/v1/automation/rules/{rule_id}/runs")
            items = response.json()["items"]
            return items if {r["message_id"] for r in items} >= {message.message_id, sentinel.message_id} else []

        await broker.publish(sentinel)
        items = await wait_for(runs, what="both runs")
        assert len(tap.for_message(message.message_id)) == 1
        by_message = {r["message_id"]: r for r in items}
        assert len(items) == 2
        fired = by_message[message.message_id]
        assert fired["fired"] is True and fired["published"] is True
        assert fired["matched_conditions"][0]["why"] == 'from_domain "example.net" equals "example.net"'
        assert by_message[sentinel.message_id]["fired"] is False
    await tap.stop()
    await asyncio.to_thread(service.stop)
    assert service.proc is not None and service.proc.returncode == 0, service.logs()
    assert '"message": "stopped"' in service.logs()
