"""The gateway in front of the real automation app (same database): rules through the public API, tenant-checked
references to inbox topics, roles, and the merged OpenAPI with automation's examples."""

import asyncio
import contextlib
import uuid

import httpx
import pytest_asyncio
import uvicorn
from pymongo import AsyncMongoClient

from mailstream_automation.api.app import create_app as create_automation_app
from mailstream_automation.consumers.references import ReferencesConsumer
from mailstream_automation.repositories import KnownReferencesRepository
from mailstream_automation.repositories import ensure_indexes as ensure_automation_indexes
from mailstream_automation.settings import AutomationSettings
from mailstream_common import topology
from mailstream_common.broker import Broker
from mailstream_common.contracts import CannedResponseChanged, StreamChanged, TopicChanged
from tests.inbox.conftest import create_account_with_keys
from tests.support.inbox_gateway import running_gateway
from tests.support.processes import free_port
from tests.support.service_tokens import GATEWAY_TOKEN, service_env
from tests.support.waiting import wait_for


@contextlib.asynccontextmanager
async def automation_server(amqp_url: str, mongodb_uri: str, database: str):
    """Automation's API, and its projection of inbox's catalogue fed as in the service (on a queue of the test's
    own, bound to the same events)."""
    client = AsyncMongoClient(mongodb_uri, tz_aware=True)
    db = client[database]
    await ensure_automation_indexes(db)
    broker = Broker(amqp_url, service="tests-automation")
    await broker.connect()
    catalogue_events = (TopicChanged, StreamChanged, CannedResponseChanged)
    queue = topology.replica_queue("tests-automation", uuid.uuid4().hex, catalogue_events)
    broker.consume(queue, ReferencesConsumer(KnownReferencesRepository(db)).handle, catalogue_events)
    await broker.start()
    settings = AutomationSettings(MONGODB_URI=mongodb_uri, MONGODB_DATABASE=database, **service_env())
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_automation_app(settings, db, {}), host="127.0.0.1", port=port, log_config=None, lifespan="off"
        )
    )
    server.capture_signals = contextlib.nullcontext
    task = asyncio.create_task(server.serve())

    async def started() -> bool:
        return server.started

    await wait_for(started, what="automation to listen")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        await broker.close(grace=2)
        await client.close()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def gateway_with_automation(backends):
    database = f"{backends.database}_inbox"  # shared with the package gateway: indexes exist
    async with (
        automation_server(backends.amqp_url, backends.mongodb_uri, database) as automation_url,
        running_gateway(
            backends.amqp_url,
            backends.mongodb_uri,
            database,
            INBOX_ROLE="api",
            AUTOMATION_URL=automation_url,
            MAILSTREAM_GATEWAY_TOKEN=GATEWAY_TOKEN,
        ) as gateway,
    ):
        yield gateway


async def test_rules_through_the_gateway_are_tenant_scoped_and_role_checked(gateway_with_automation):
    acme = await create_account_with_keys(gateway_with_automation, "Acme")
    globex = await create_account_with_keys(gateway_with_automation, "Globex")
    try:
        acme_topic = (await acme.admin.post("/v1/topics", json={"name": "Support"})).json()
        globex_topic = (await globex.admin.post("/v1/topics", json={"name": "Secret"})).json()
        rule = {
            "name": "Refunds are urgent",
            "match": "any",
            "conditions": [{"field": "subject", "operator": "contains", "value": "refund"}],
            "actions": [{"type": "set_priority", "priority": "urgent"}],
        }
        created = await acme.admin.post("/v1/automation/rules", json={**rule, "topic_id": acme_topic["id"]})
        assert created.status_code == 201, created.text
        rule_id = created.json()["id"]

        # another account's topic is refused by automation, which checks the reference in its projection of inbox's
        # topics (fed by topic.changed)
        foreign = await acme.admin.post("/v1/automation/rules", json={**rule, "topic_id": globex_topic["id"]})
        assert foreign.status_code == 422
        assert "topic_id" in str(foreign.json()["detail"])

        assert (await acme.agent.get(f"/v1/automation/rules/{rule_id}")).json()["name"] == "Refunds are urgent"
        assert (await acme.agent.patch(f"/v1/automation/rules/{rule_id}", json={"enabled": False})).status_code == 403
        assert (await globex.admin.get(f"/v1/automation/rules/{rule_id}")).status_code == 404
        assert (await globex.admin.delete(f"/v1/automation/rules/{rule_id}")).status_code == 404
        assert (await globex.admin.get("/v1/automation/rules")).json()["items"] == []
        assert (await acme.admin.delete(f"/v1/automation/rules/{rule_id}")).status_code == 204
    finally:
        for account in (acme, globex):
            await account.admin.aclose()
            await account.agent.aclose()


async def test_openapi_includes_automation_with_its_examples(gateway_with_automation):
    async with httpx.AsyncClient(base_url=gateway_with_automation.base_url) as client:
        document = (await client.get("/openapi.json")).json()
    create = document["paths"]["/v1/automation/rules"]["post"]
    assert create["requestBody"]["content"]["application/json"]["examples"]
    assert "/v1/conversations" in document["paths"] and "/v1/streams/{stream_id}" in document["paths"]
    assert "x-internal-token" not in str(create).lower()
