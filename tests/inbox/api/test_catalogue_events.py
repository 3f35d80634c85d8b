"""Inbox's catalogue events: topics, streams and canned responses publish versioned `*.changed` events; a change
whose publication was not confirmed is published by the relay; a resync request republishes everything."""

import pytest

from mailstream_common.broker import Broker
from mailstream_common.contracts import (
    CannedResponseChanged,
    ProjectionResyncRequested,
    StreamChanged,
    TopicChanged,
)
from mailstream_inbox import catalogue
from mailstream_inbox.repositories import topics as topics_repo
from tests.support.inbox_gateway import EventTap

EVENTS = [TopicChanged, StreamChanged, CannedResponseChanged]


@pytest.fixture
async def tap(backends):
    async with EventTap(backends.amqp_url, EVENTS) as tap:
        yield tap


async def test_topic_writes_publish_versioned_events_and_deletion_is_soft(account, tap, inbox_gateway):
    created = (await account.admin.post("/v1/topics", json={"name": "Support"})).json()
    first = await tap.next_matching(TopicChanged, lambda e: e.topic_id == created["id"])
    assert (first.change, first.version, first.name, first.deleted) == ("created", 1, "Support", False)
    assert first.account_id == account.account_id

    assert (await account.admin.patch(f"/v1/topics/{created['id']}", json={"name": "Care"})).status_code == 200
    renamed = await tap.next_matching(TopicChanged, lambda e: e.topic_id == created["id"])
    assert (renamed.change, renamed.version, renamed.name) == ("updated", 2, "Care")

    assert (await account.admin.delete(f"/v1/topics/{created['id']}")).status_code == 204
    deleted = await tap.next_matching(TopicChanged, lambda e: e.topic_id == created["id"])
    assert (deleted.change, deleted.version, deleted.deleted) == ("deleted", 3, True)
    assert (await account.admin.get(f"/v1/topics/{created['id']}")).status_code == 404
    assert created["id"] not in [t["id"] for t in (await account.admin.get("/v1/topics")).json()["items"]]
    assert (await account.admin.delete(f"/v1/topics/{created['id']}")).status_code == 404
    stored = await inbox_gateway.db["topics"].find_one({"_id": created["id"]})
    assert stored["deleted"] is True and "publish_pending" not in stored  # published: the outbox flag is gone


async def test_canned_response_writes_publish_versioned_events(account, tap):
    body = {"title": "Shipped", "text": "Your order has shipped."}
    created = (await account.admin.post("/v1/canned-responses", json=body)).json()
    first = await tap.next_matching(CannedResponseChanged, lambda e: e.canned_response_id == created["id"])
    assert (first.change, first.version, first.deleted) == ("created", 1, False)
    path = f"/v1/canned-responses/{created['id']}"
    assert (await account.admin.patch(path, json={"title": "Sent"})).status_code == 200
    updated = await tap.next_matching(CannedResponseChanged, lambda e: e.canned_response_id == created["id"])
    assert (updated.version, updated.title) == (2, "Sent")
    assert (await account.admin.delete(path)).status_code == 204
    deleted = await tap.next_matching(CannedResponseChanged, lambda e: e.canned_response_id == created["id"])
    assert (deleted.version, deleted.deleted) == (3, True)
    assert (await account.admin.get(path)).status_code == 404


async def test_an_unpublished_change_is_published_by_the_relay(account, tap, inbox_gateway, broker: Broker):
    """A write whose event never left (the process died before the confirm) keeps its outbox flag; the relay
    publishes the document's current state and clears the flag."""
    doc = await topics_repo.create_topic(inbox_gateway.db, account.account_id, "Written, never published")
    assert doc["publish_pending"] == "created"
    published = await catalogue.relay_pending(inbox_gateway.db, broker, older_than_seconds=0)
    assert published >= 1
    event = await tap.next_matching(TopicChanged, lambda e: e.topic_id == doc["_id"])
    assert (event.change, event.version, event.name) == ("created", 1, "Written, never published")
    stored = await inbox_gateway.db["topics"].find_one({"_id": doc["_id"]})
    assert "publish_pending" not in stored


async def test_the_relay_does_not_clear_a_newer_pending_write(account, inbox_gateway, broker: Broker):
    doc = await topics_repo.create_topic(inbox_gateway.db, account.account_id, "v1")
    await topics_repo.rename_topic(inbox_gateway.db, account.account_id, doc["_id"], "v2")
    # The route of the first write publishes late: its guarded clear must leave the rename's flag alone.
    assert await catalogue.publish_change(inbox_gateway.db, broker, "topic", doc, "created")
    stored = await inbox_gateway.db["topics"].find_one({"_id": doc["_id"]})
    assert (stored["revision"], stored["publish_pending"]) == (2, "updated")


async def test_a_resync_request_republishes_every_entity_as_a_snapshot(account, tap, broker: Broker):
    live = (await account.admin.post("/v1/topics", json={"name": "Live"})).json()
    gone = (await account.admin.post("/v1/topics", json={"name": "Gone"})).json()
    assert (await account.admin.delete(f"/v1/topics/{gone['id']}")).status_code == 204
    await broker.publish(ProjectionResyncRequested(entities=["topic"], requested_by="tests"))
    snapshots = {}
    while len(snapshots) < 2:
        event = await tap.next_matching(
            TopicChanged, lambda e: e.change == "snapshot" and e.topic_id in (live["id"], gone["id"])
        )
        snapshots[event.topic_id] = event
    assert (snapshots[live["id"]].version, snapshots[live["id"]].deleted) == (1, False)
    assert (snapshots[gone["id"]].version, snapshots[gone["id"]].deleted) == (2, True)
