"""Each service owns its data: the five processes run with a database each, and what ingest, sender and automation
need of inbox's streams, topics and canned responses reaches their own projections as events.

- a stale `stream.changed` (older version, as a redelivery or a resync duplicate would be) changes nothing;
- mail in, an automation rule naming inbox's topic and stream, a reply out: every service works from its own
  database, and no service's database holds another's collections;
- a service started after the streams existed, on an empty database, catches up through a resync.
"""

import asyncio
import contextlib
import smtplib
from collections.abc import Iterator
from email.message import EmailMessage
from email.utils import make_msgid

import httpx
import pytest
from pymongo import MongoClient

from mailstream_common.broker import Broker
from mailstream_common.contracts import StreamChanged
from tests.e2e.conftest import System, running_system
from tests.e2e.scenarios_support import new_account, new_stream, reply, smtp_send, wait_for_conversation
from tests.support.processes import ServiceProcess
from tests.support.waiting import wait_for_sync

pytestmark = pytest.mark.e2e

SERVICES = ("ingest", "inbox", "automation", "domains", "sender")
INBOX_COLLECTIONS = {"streams", "topics", "canned_responses", "accounts", "conversations", "messages"}


@pytest.fixture(scope="module")
def databases(backends) -> dict[str, str]:
    return {service: f"{backends.database}_own_{service}" for service in SERVICES}


@pytest.fixture(scope="module")
def system(backends, tmp_path_factory, databases) -> Iterator[System]:
    extra_env = {f"{service.upper()}_MONGODB_DATABASE": name for service, name in databases.items()}
    with running_system(backends, tmp_path_factory, "ownership", extra_env) as running:
        yield running


@pytest.fixture(scope="module")
def mongo(backends) -> Iterator[MongoClient]:
    client = MongoClient(backends.mongodb_uri, tz_aware=True)
    yield client
    client.close()


def rcpt_code(system: System, address: str) -> int:
    with smtplib.SMTP("127.0.0.1", system.smtp_port, timeout=30) as smtp:
        smtp.ehlo()
        smtp.mail("probe@example.net")
        return smtp.rcpt(address)[0]


def consumed(process: ServiceProcess, queue_prefix: str) -> float:
    """Messages the process has acknowledged from queues whose name starts with `queue_prefix` (its /metrics)."""
    text = httpx.get(f"{process.ops_url}/metrics", timeout=5).text
    return sum(
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith("mailstream_broker_consumed_total{")
        and f'queue="{queue_prefix}' in line
        and 'outcome="ack"' in line
    )


def publish(system: System, event: StreamChanged) -> None:
    async def send() -> None:
        broker = Broker(system.env["AMQP_URL"], service="tests")
        await broker.connect()
        try:
            await broker.publish(event)
        finally:
            await broker.close(grace=1)

    asyncio.run(send())


def test_a_stale_stream_event_does_not_bring_a_deleted_stream_back(system: System, mongo, databases):
    account, api = new_account(system, "Stale")
    stream = new_stream(api, "help@stale.test")
    address = stream["forwarding_address"]
    wait_for_sync(lambda: rcpt_code(system, address) == 250, timeout=30, what="RCPT accepted for the new stream")
    assert api.delete(f"/v1/streams/{stream['id']}").status_code == 204
    wait_for_sync(lambda: rcpt_code(system, address) == 550, timeout=30, what="RCPT refused once deleted")
    routes = mongo[databases["ingest"]]["stream_routes"]
    wait_for_sync(lambda: routes.find_one({"_id": stream["id"], "live": False}), what="the deletion in the projection")

    ingest = system.processes["ingest"]
    before = (consumed(ingest, "ingest.stream_routes"), consumed(ingest, "ingest.replica."))
    stale = StreamChanged(
        change="created", version=1, account_id=account["account_id"],
        topic_id=stream["topic_id"], stream_id=stream["id"], address=stream["address"],
        forwarding_address=address, allow_agent_send=True, deleted=False,
    )  # fmt: skip
    publish(system, stale)  # as a redelivery of the creation would arrive, after the deletion
    wait_for_sync(
        lambda: (
            consumed(ingest, "ingest.stream_routes") > before[0] and consumed(ingest, "ingest.replica.") > before[1]
        ),
        timeout=30,
        what="ingest's projection queue and replica queue handled the stale event",
    )
    assert rcpt_code(system, address) == 550
    route = routes.find_one({"_id": stream["id"]})
    assert (route["live"], route["version"]) == (False, 2)


def test_every_service_works_from_its_own_database(system: System, mongo, databases):
    account, api = new_account(system, "Owned")
    stream = new_stream(api, "support@owned.test")
    canned = api.post("/v1/canned-responses", json={"title": "Thanks", "text": "We got your mail."})
    assert canned.status_code == 201, canned.text
    # Automation checks the topic, stream and canned response in its own projection of them.
    rule = api.post(
        "/v1/automation/rules",
        json={
            "name": "tag orders",
            "topic_id": stream["topic_id"],
            "stream_ids": [stream["id"]],
            "conditions": [{"field": "subject", "operator": "contains", "value": "order"}],
            "actions": [
                {"type": "add_tags", "tags": ["orders"]},
                {"type": "auto_reply", "canned_response_id": canned.json()["id"], "apply_template": False},
            ],
        },
    )
    assert rule.status_code == 201, rule.text
    unknown = api.post(
        "/v1/automation/rules",
        json={
            "name": "unknown stream",
            "stream_ids": ["no-such-stream"],
            "conditions": [{"field": "subject", "operator": "contains", "value": "x"}],
            "actions": [{"type": "add_tags", "tags": ["x"]}],
        },
    )
    assert unknown.status_code == 422, unknown.text

    mail = EmailMessage()
    mail["From"] = "Kana <kana@example.net>"
    mail["To"] = "support@owned.test"
    mail["Subject"] = "Where is my order?"
    mail["Message-ID"] = make_msgid(domain="example.net")
    mail.set_content("Order 1234.")
    wait_for_sync(lambda: rcpt_code(system, stream["forwarding_address"]) == 250, timeout=30, what="RCPT accepted")
    smtp_send(system, mail, mail_from="kana@example.net", rcpt=stream["forwarding_address"])
    conversation = wait_for_conversation(api, stream["id"], "Where is my order?")
    wait_for_sync(
        lambda: "orders" in api.get(f"/v1/conversations/{conversation['id']}").json().get("tags", []),
        timeout=30,
        what="the rule's tag",
    )
    reply(api, conversation["id"], "It ships today.")  # sent: sender found the stream in its own projection

    names = {service: set(mongo[database].list_collection_names()) for service, database in databases.items()}
    assert names["inbox"] >= INBOX_COLLECTIONS
    assert "stream_routes" in names["ingest"] and "stream_settings" in names["sender"]
    assert "known_references" in names["automation"]
    for service in ("ingest", "automation", "domains", "sender"):
        assert not names[service] & INBOX_COLLECTIONS, f"{service} holds inbox's collections: {names[service]}"
    assert not names["inbox"] & {"stream_routes", "stream_settings", "known_references"}
    assert account["account_id"]


@pytest.mark.parametrize("service", ["ingest", "sender"])
def test_a_service_started_on_an_empty_database_catches_up_by_resync(system: System, mongo, databases, service):
    _, api = new_account(system, f"Late {service}")
    stream = new_stream(api, f"late-{service}@acme.test")
    old = system.processes[service]
    old.stop()
    fresh_database = f"{databases[service]}_late"
    mongo.drop_database(fresh_database)
    env = {**old.env, f"{service.upper()}_MONGODB_DATABASE": fresh_database, "INGEST_NEGATIVE_CACHE_SECONDS": "0"}
    replacement = ServiceProcess(f"{service}-late", old.module, env, old.ops_url, old.log_path.parent)
    system.processes[service] = replacement
    replacement.start(timeout=120)

    projection = "stream_routes" if service == "ingest" else "stream_settings"
    wait_for_sync(
        lambda: mongo[fresh_database][projection].find_one({"_id": stream["id"]}),
        timeout=30,
        what=f"{service}'s empty projection filled by the resync",
    )
    if service == "ingest":
        assert rcpt_code(system, stream["forwarding_address"]) == 250
    else:
        mail = EmailMessage()
        mail["From"] = "Late <late@example.net>"
        mail["To"] = stream["address"]
        mail["Subject"] = "Late sender"
        mail["Message-ID"] = make_msgid(domain="example.net")
        mail.set_content("Hello.")
        smtp_send(system, mail, mail_from="late@example.net", rcpt=stream["forwarding_address"])
        conversation = wait_for_conversation(api, stream["id"], "Late sender")
        reply(api, conversation["id"], "Hello back.")  # waits until the relay took it
    with contextlib.suppress(Exception):
        mongo.drop_database(fresh_database)
