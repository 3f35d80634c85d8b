"""`automation.evaluate` against real RabbitMQ and the real database: commands, runs, redelivery, loop guards.

The consumer under test reads a private queue bound to `message.stored` with prefetch 1, so messages are handled in order:
a 'sentinel' message published after a duplicate proves the duplicate was handled when the sentinel's command
arrives (no sleeping).
"""

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import aio_pika
import pytest
from pymongo.asynchronous.database import AsyncDatabase

from mailstream_automation.consumers.evaluate import EvaluateConsumer
from mailstream_automation.repositories import (
    AutoRepliesRepository,
    RulesRepository,
    RunsRepository,
    ensure_indexes,
)
from mailstream_automation.rules import RuleDefinition, StoredRule
from mailstream_automation.runs import run_id_for
from mailstream_common import topology
from mailstream_common.broker import HEADER_ATTEMPT, HEADER_EVENT, HEADER_SCHEMA_VERSION, Broker
from mailstream_common.contracts import Address, MessageStored
from tests.automation.conftest import ApiServer, test_settings
from tests.automation.support import CommandTap, delete_queues, stored_message

pytestmark = pytest.mark.integration

AUTO_REPLY = {"type": "auto_reply", "canned_response_id": "canned-1"}
TAG = {"type": "add_tags", "tags": ["refund"]}
REFUND = {"field": "subject", "operator": "contains", "value": "refund"}
SENTINEL = {"field": "subject", "operator": "equals", "value": "sentinel"}


@dataclass
class Automation:
    account_id: str
    broker: Broker
    rules: RulesRepository
    runs: RunsRepository
    auto_replies: AutoRepliesRepository
    tap: CommandTap
    sentinel_rule_id: str

    async def add_rule(self, **fields) -> StoredRule:
        definition = RuleDefinition.model_validate({"name": "rule", "conditions": [REFUND], "actions": [TAG]} | fields)
        return await self.rules.create(self.account_id, definition, position=None, now=datetime.now(UTC))

    async def deliver(self, *events: MessageStored) -> None:
        for event in events:
            await self.broker.publish(event)

    async def settle(self) -> None:
        """Publish a sentinel and wait for its command: everything published before it has been handled."""
        sentinel = stored_message(self.account_id, subject="sentinel")
        await self.deliver(sentinel)
        await self.tap.wait_for_message(sentinel.message_id)

    async def runs_of(self, message_id: str) -> list[dict]:
        """The message's runs, except the sentinel rule's."""
        runs = await self.runs.for_message(self.account_id, message_id)
        return [r for r in runs if r["rule_id"] != self.sentinel_rule_id]


@pytest.fixture
async def automation(broker: Broker, mongo_db: AsyncDatabase) -> AsyncIterator[Automation]:
    await ensure_indexes(mongo_db)
    account_id = uuid.uuid4().hex
    rules, runs = RulesRepository(mongo_db), RunsRepository(mongo_db)
    auto_replies = AutoRepliesRepository(mongo_db)
    # Last in order, so it never stops other rules: fires only on the sentinel message.
    sentinel = await rules.create(
        account_id,
        RuleDefinition.model_validate({"name": "sentinel", "conditions": [SENTINEL], "actions": [TAG]}),
        position=None,
        now=datetime(2099, 1, 1, tzinfo=UTC),
    )
    await rules.collection.update_one({"account_id": account_id}, {"$set": {"position": 1000}})
    consumer = Broker(broker._url, service="automation-test")
    await consumer.connect()
    spec = topology.QueueSpec(f"test.automation.{uuid.uuid4().hex[:8]}", (MessageStored,), retry_delays=(1,))
    evaluate = EvaluateConsumer(rules, runs, auto_replies, consumer, test_settings())
    consumer.consume(spec, evaluate.handle, MessageStored, prefetch=1)
    await consumer.start()
    tap = await CommandTap(broker).start()
    try:
        yield Automation(account_id, broker, rules, runs, auto_replies, tap, sentinel.id)
    finally:
        await tap.stop()
        await consumer.close(grace=5)
        await delete_queues(broker, spec)


async def test_a_fired_rule_is_requested_once_even_when_the_message_comes_twice(automation: Automation):
    rule = await automation.add_rule(name="Tag refunds")
    message = stored_message(automation.account_id)
    await automation.deliver(message)
    [command] = await automation.tap.wait_for_message(message.message_id)
    await automation.deliver(message, message)  # redelivered (same event) twice more
    await automation.settle()

    assert len(automation.tap.for_message(message.message_id)) == 1
    assert command.rule_id == rule.id and command.rule_name == "Tag refunds"
    assert command.conversation_id == message.conversation_id and command.account_id == automation.account_id
    assert [a.model_dump() for a in command.actions] == [TAG]
    [run] = await automation.runs_of(message.message_id)
    assert run["fired"] is True and run["published"] is True and run["actions"] == [TAG]
    assert run["rule_id"] == rule.id and run["conversation_id"] == message.conversation_id
    shown = await automation.rules.get(automation.account_id, rule.id)
    assert shown is not None and shown.fired_count == 1 and shown.last_fired_at is not None
    assert run["matched_conditions"] == [
        {
            "index": 0,
            "field": "subject",
            "operator": "contains",
            "matched": True,
            "why": 'subject "Refund please" contains "refund"',
        }
    ]


async def test_outbound_messages_trigger_nothing(automation: Automation):
    await automation.add_rule(conditions=[])  # would fire on anything
    outbound = stored_message(automation.account_id, direction="outbound")
    await automation.deliver(outbound)
    await automation.settle()
    assert automation.tap.for_message(outbound.message_id) == []
    assert await automation.runs_of(outbound.message_id) == []


async def test_unfired_rules_are_recorded_with_the_reason(automation: Automation):
    rule = await automation.add_rule(conditions=[{"field": "subject", "operator": "contains", "value": "invoice"}])
    message = stored_message(automation.account_id)
    await automation.deliver(message)
    await automation.settle()
    assert automation.tap.for_message(message.message_id) == []
    [run] = [r for r in await automation.runs_of(message.message_id) if r["rule_id"] == rule.id]
    assert run["fired"] is False and run["actions"] == [] and run["published"] is False
    assert run["matched_conditions"][0]["why"] == 'subject "Refund please" does not contain "invoice"'


async def test_rules_run_in_order_and_stop_processing_ends_the_evaluation(automation: Automation):
    second = await automation.add_rule(name="second", actions=[{"type": "set_priority", "priority": "high"}])
    first = await automation.add_rule(name="first", stop_processing=True)
    await automation.rules.update(automation.account_id, first.id, first, position=0, now=datetime.now(UTC))
    other_stream = await automation.add_rule(name="elsewhere", stream_ids=["stream-9"])
    message = stored_message(automation.account_id)
    await automation.deliver(message)
    await automation.settle()
    assert [c.rule_id for c in automation.tap.for_message(message.message_id)] == [first.id]
    recorded = {r["rule_id"] for r in await automation.runs_of(message.message_id)}
    assert recorded == {first.id}
    assert second.id not in recorded and other_stream.id not in recorded


async def test_auto_reply_is_held_back_for_automatic_mail_but_other_actions_go(automation: Automation):
    await automation.add_rule(actions=[AUTO_REPLY, TAG])
    robot = stored_message(automation.account_id, headers=[("Auto-Submitted", "auto-replied")])
    await automation.deliver(robot)
    [command] = await automation.tap.wait_for_message(robot.message_id)
    assert [a.type for a in command.actions] == ["add_tags"]
    [run] = await automation.runs_of(robot.message_id)
    assert run["skipped_actions"] == [{"type": "auto_reply", "reason": "auto_submitted: Auto-Submitted: auto-replied"}]


async def test_a_rule_that_only_auto_replies_requests_nothing_for_list_mail(automation: Automation):
    await automation.add_rule(actions=[AUTO_REPLY])
    newsletter = stored_message(automation.account_id, headers=[("List-Id", "<news.example.net>")])
    daemon = stored_message(automation.account_id, from_=Address(address="MAILER-DAEMON@mx.example.net"))
    await automation.deliver(newsletter, daemon)
    await automation.settle()
    for message, reason in ((newsletter, "mailing_list"), (daemon, "daemon_sender")):
        assert automation.tap.for_message(message.message_id) == []
        [run] = await automation.runs_of(message.message_id)
        assert run["fired"] is True and run["actions"] == [] and run["published"] is False
        assert run["skipped_actions"][0]["reason"].startswith(reason)


async def test_one_auto_reply_per_rule_and_customer_per_interval(automation: Automation):
    rule = await automation.add_rule(actions=[AUTO_REPLY, TAG])
    first = stored_message(automation.account_id)
    again = stored_message(automation.account_id, from_=Address(address="KANA@example.net"))
    someone_else = stored_message(automation.account_id, from_=Address(address="ren@example.org"))
    await automation.deliver(first, again, someone_else)
    await automation.settle()

    def types(message: MessageStored) -> list[str]:
        [command] = automation.tap.for_message(message.message_id)
        return [a.type for a in command.actions]

    assert types(first) == ["auto_reply", "add_tags"]
    assert types(again) == ["add_tags"]
    assert types(someone_else) == ["auto_reply", "add_tags"]
    [run] = await automation.runs_of(again.message_id)
    assert run["skipped_actions"][0]["reason"].startswith("rate_limited: this rule auto-replied to kana@example.net")
    # A second rule has its own allowance.
    await automation.add_rule(name="other", actions=[AUTO_REPLY])
    later = stored_message(automation.account_id)
    await automation.deliver(later)
    await automation.settle()
    by_rule = {c.rule_id: [a.type for a in c.actions] for c in automation.tap.for_message(later.message_id)}
    assert by_rule[rule.id] == ["add_tags"]
    assert list(by_rule.values()).count(["auto_reply"]) == 1


async def test_a_run_expires_after_the_retention_and_an_auto_reply_record_after_the_longer_of_it_and_the_interval(
    automation: Automation,
):
    rule = await automation.add_rule(actions=[AUTO_REPLY, TAG])
    message = stored_message(automation.account_id)
    await automation.deliver(message)
    await automation.tap.wait_for_message(message.message_id)
    [run] = await automation.runs_of(message.message_id)
    assert run["expires_at"] - run["at"] == timedelta(days=30)  # AUTOMATION_RUNS_RETENTION_DAYS
    record = await automation.auto_replies.collection.find_one({"_id": f"{rule.id}:kana@example.net"})
    assert record["message_id"] == message.message_id
    assert record["expires_at"] - record["last_at"] == timedelta(days=30)  # longer than the 24 h interval


async def test_a_run_recorded_but_not_published_is_published_on_redelivery(automation: Automation):
    """A crash between recording the run and the broker's confirm: the next delivery publishes it, once."""
    rule = await automation.add_rule()
    message = stored_message(automation.account_id)
    await automation.runs.insert_once(
        unpublished_fired_run(run_id_for(rule.id, message.message_id), rule, message, automation.account_id)
    )
    await automation.deliver(message, message)
    await automation.settle()
    assert len(automation.tap.for_message(message.message_id)) == 1
    [run] = await automation.runs_of(message.message_id)
    assert run["published"] is True


async def test_a_stored_rule_that_no_longer_validates_does_not_block_the_others(automation: Automation):
    good = await automation.add_rule(name="good")
    broken = await automation.add_rule(name="broken")
    await automation.rules.collection.update_one(
        {"_id": broken.id},
        {
            "$set": {
                "conditions": [{"field": "received_at", "operator": "within_hours", "value": {"timezone": "Gone/Zone"}}]
            }
        },
    )
    message = stored_message(automation.account_id)
    await automation.deliver(message)
    await automation.settle()
    assert [c.rule_id for c in automation.tap.for_message(message.message_id)] == [good.id]


async def test_rule_changes_through_the_api_apply_to_the_very_next_message(automation: Automation, api: ApiServer):
    """The runner caches the account's rules; the API shares nothing with it but the database, as another replica
    would. Every kind of write must reach the next message."""

    async def tags_of_next_message() -> list[str]:
        message = stored_message(automation.account_id)
        await automation.deliver(message)
        await automation.settle()
        return sorted(t for c in automation.tap.for_message(message.message_id) for a in c.actions for t in a.tags)  # type: ignore[union-attr]

    def tagging(tag: str, **fields) -> dict:
        return {"name": tag, "conditions": [REFUND], "actions": [{"type": "add_tags", "tags": [tag]}]} | fields

    assert await tags_of_next_message() == []  # the runner has the account's rules (only the sentinel) cached now
    async with api.client(automation.account_id) as client:
        first = (await client.post("/v1/automation/rules", json=tagging("a"))).json()
        assert await tags_of_next_message() == ["a"]
        assert (await client.patch(f"/v1/automation/rules/{first['id']}", json={"enabled": False})).status_code == 200
        assert await tags_of_next_message() == []
        changed = await client.patch(f"/v1/automation/rules/{first['id']}", json=tagging("b", enabled=True))
        assert changed.status_code == 200
        assert await tags_of_next_message() == ["b"]
        second = (await client.post("/v1/automation/rules", json=tagging("c", stop_processing=True))).json()
        assert await tags_of_next_message() == ["b", "c"]
        moved = await client.patch(f"/v1/automation/rules/{second['id']}", json={"position": 0})
        assert moved.status_code == 200
        assert await tags_of_next_message() == ["c"]  # first now, and it stops the evaluation
        assert (await client.delete(f"/v1/automation/rules/{second['id']}")).status_code == 204
        assert await tags_of_next_message() == ["b"]
        assert (await client.delete(f"/v1/automation/rules/{first['id']}")).status_code == 204
        assert await tags_of_next_message() == []


async def test_a_retried_message_publishes_what_an_earlier_attempt_recorded_for_a_rule_disabled_since(
    automation: Automation,
):
    """A retry (the broker's `x-attempt` > 1) looks for every unpublished run of the message, not only those of the
    rules it evaluates now: the decision was made, so the command goes out once."""
    rule = await automation.add_rule()
    message = stored_message(automation.account_id)
    await automation.runs.insert_once(
        unpublished_fired_run(run_id_for(rule.id, message.message_id), rule, message, automation.account_id)
    )
    await automation.rules.update(
        automation.account_id,
        rule.id,
        rule.model_copy(update={"enabled": False}),
        position=None,
        now=datetime.now(UTC),
    )
    channel = await automation.broker.connection.channel()
    exchange = await topology.declare_exchange(channel)
    await exchange.publish(
        aio_pika.Message(
            message.model_dump_json(by_alias=True).encode(),
            content_type="application/json",
            headers={
                HEADER_EVENT: message.event_name,
                HEADER_SCHEMA_VERSION: message.schema_version,
                HEADER_ATTEMPT: 2,
            },
        ),
        routing_key=message.event_name,
    )
    await channel.close()
    [command] = await automation.tap.wait_for_message(message.message_id)
    assert command.rule_id == rule.id and [a.model_dump() for a in command.actions] == [TAG]
    await automation.settle()
    [run] = await automation.runs_of(message.message_id)
    assert run["published"] is True


def unpublished_fired_run(run_id: str, rule, message, account_id: str) -> dict:
    """A run as a worker leaves it when it crashed after recording the decision and before the broker's confirm."""
    return {
        "_id": run_id,
        "rule_id": rule.id,
        "rule_name": rule.name,
        "account_id": account_id,
        "message_id": message.message_id,
        "conversation_id": message.conversation_id,
        "customer": "kana@example.net",
        "fired": True,
        "matched_conditions": [],
        "actions": [TAG],
        "skipped_actions": [],
        "published": False,
        "at": datetime.now(UTC),
    }
