"""What the per-replica rules cache saves: automation's work per message with and without it, in the same run.

One run, all on this machine, on a database and a RabbitMQ vhost of its own: one account with RULES enabled rules
(two conditions each, only the last one fires) while the rules collection also holds NOISE_ACCOUNTS other accounts
with RULES rules each. Then, alternating one call of each so that both see the same machine and the same data:

1. rules look-up alone: the old per-message `find({"account_id"}).sort(...)` of the account's rules (baseline) vs
   `CachedRules` (a bare `_id` read of the account's rules revision, then the rules from memory);
2. the whole consumer (`EvaluateConsumer.handle` on MESSAGES distinct stored messages: runs, the command published to the
   broker with its confirm): one consumer that reads the rules from the database on every message (baseline) vs one
   with the cache. `--record-unfired` keeps the service default (a run for every evaluated rule); without it only
   the fired rule's run is written, which isolates what the rules read costs.

    eval "$(scripts/deps.sh)" && uv run python bench/automation_rules.py [--rules 50] [--noise-accounts 400] \
        [--lookups 200] [--messages 100]

The measured account's rules are created through `RulesRepository.create` (the path the API takes: positions and
the rules revision as the service writes them); the other accounts' rules are copies of those documents with
another account id and fresh ids (bulk, for speed; they follow whatever shape `create` writes). The whole message
is measured twice: with only fired runs recorded, and with the service default (a run for every evaluated rule).
Prints a markdown table with the server it ran on and the load average.

Needs RabbitMQ (rabbitmqctl, for the private vhost) and a MongoDB-wire server (SecantusDB in development).
"""

import argparse
import asyncio
import os
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest_smtp import vhost

from mailstream_automation.consumers.evaluate import EvaluateConsumer
from mailstream_automation.repositories import AutoRepliesRepository, RulesRepository, RunsRepository, ensure_indexes
from mailstream_automation.rules import RuleDefinition
from mailstream_automation.settings import AutomationSettings
from mailstream_common import mongo, topology
from mailstream_common.broker import Broker, Delivery
from mailstream_common.contracts import Address, MessageStored

TOPIC, STREAM = "topic-1", "stream-1"


def rule_definition(position: int, *, fires: bool) -> RuleDefinition:
    """Conditions typical of real rules (a subject word, a sender domain); only a firing rule matches the message."""
    conditions = [
        {"field": "subject", "operator": "contains", "value": "order" if fires else f"invoice {position}"},
        {"field": "from_domain", "operator": "not_equals", "value": f"spam{position}.example"},
    ]
    return RuleDefinition.model_validate(
        {
            "name": f"rule {position}",
            "conditions": conditions,
            "actions": [
                {"type": "add_tags", "tags": [f"tag-{position}"]},
                {"type": "set_priority", "priority": "high"},
            ],
        }
    )


def message(account_id: str) -> MessageStored:
    return MessageStored(
        account_id=account_id,
        topic_id=TOPIC,
        stream_id=STREAM,
        conversation_id=uuid.uuid4().hex,
        message_id=uuid.uuid4().hex,
        direction="inbound",
        is_first_message=True,
        from_=Address(name="Kana", address="kana@example.net"),
        to=[Address(address="support@acme.test")],
        subject="Where is my order?",
        text="Order 1234 has not arrived.",
        headers=[],
        received_at=datetime.now(UTC),
    )


class UncachedRules:
    """What the consumer did before the cache: the account's rules from the database on every message."""

    def __init__(self, repository: RulesRepository) -> None:
        self.repository = repository

    async def enabled_for_account(self, account_id: str):
        return tuple(await self.repository.enabled_for_account(account_id))


async def paired(
    count: int, baseline: Callable[[int], Awaitable[object]], candidate: Callable[[int], Awaitable[object]]
) -> tuple[list[float], list[float]]:
    """Seconds per call of each, alternating which goes first so that neither always follows the other."""
    base_times, cand_times = [], []
    for i in range(count):
        order = [(baseline, base_times), (candidate, cand_times)]
        for call, times in order if i % 2 == 0 else reversed(order):
            started = time.perf_counter()
            await call(i)
            times.append(time.perf_counter() - started)
    return base_times, cand_times


def ms(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, round(q * (len(values) - 1)))] * 1000


def load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


async def run(args: argparse.Namespace, amqp_url: str, mongodb_uri: str) -> None:
    database = f"mailstream_bench_automation_{uuid.uuid4().hex[:8]}"
    client = mongo.create_client(mongodb_uri, app_name="bench")
    db = client[database]
    broker = Broker(amqp_url, service="bench")
    info = await client.admin.command("buildInfo")
    server = (
        f"SecantusDB {info['secantusVersion']}"
        if info.get("secantusVersion")
        else f"MongoDB-wire server {info['version']} (not SecantusDB; check what it is before calling it MongoDB)"
    )
    try:
        await ensure_indexes(db)
        now = datetime.now(UTC) - timedelta(days=1)
        rules_repo, runs_repo = RulesRepository(db), RunsRepository(db)
        started = time.perf_counter()
        account_id = uuid.uuid4().hex
        for p in range(args.rules):
            definition = rule_definition(p, fires=p == args.rules - 1)
            await rules_repo.create(account_id, definition, position=None, now=now)
        own = await rules_repo.collection.find({"account_id": account_id}).to_list()
        assert len(own) == args.rules, len(own)
        for _ in range(args.noise_accounts):
            other = uuid.uuid4().hex
            await rules_repo.collection.insert_many([{**d, "_id": uuid.uuid4().hex, "account_id": other} for d in own])
        total = await rules_repo.collection.count_documents({})
        print(
            f"seeded {total} rules ({args.noise_accounts} other accounts + 1, {args.rules} each) "
            f"in {time.perf_counter() - started:.1f}s; database {database}; {server}; load average {load()}",
            flush=True,
        )

        await broker.connect()
        await broker.declare(topology.INBOX_ACTIONS)  # where the commands go, as in the service
        rows = []

        def consumers(record_unfired: bool) -> tuple[EvaluateConsumer, EvaluateConsumer]:
            settings = AutomationSettings(record_unfired_runs=record_unfired)
            replies = AutoRepliesRepository(db)
            uncached = EvaluateConsumer(rules_repo, runs_repo, replies, broker, settings)
            uncached.cached_rules = UncachedRules(rules_repo)  # type: ignore[assignment]
            return uncached, EvaluateConsumer(rules_repo, runs_repo, replies, broker, settings)

        uncached, cached = consumers(False)
        rules = await cached.cached_rules.enabled_for_account(account_id)
        assert len(rules) == args.rules and rules == await uncached.cached_rules.enabled_for_account(account_id)
        before = load()
        base, cand = await paired(
            args.lookups,
            lambda _: uncached.cached_rules.enabled_for_account(account_id),
            lambda _: cached.cached_rules.enabled_for_account(account_id),
        )
        rows.append((f"rules look-up ({args.rules} rules)", args.lookups, base, cand, f"{before} -> {load()}"))
        delivery = Delivery(attempt=1, first_seen=time.time(), redelivered=False, queue="bench")
        for record_unfired in (False, True):
            uncached, cached = consumers(record_unfired)
            before = load()
            base, cand = await paired(
                args.messages,
                lambda _: uncached.handle(message(account_id), delivery),  # noqa: B023
                lambda _: cached.handle(message(account_id), delivery),  # noqa: B023
            )
            what = "a run for each of the rules (default)" if record_unfired else "only the fired run recorded"
            rows.append(
                (f"whole message, {args.rules} rules, {what}", args.messages, base, cand, f"{before} -> {load()}")
            )
        runs = await runs_repo.collection.count_documents({})
        print(f"\n{server}; {total} rules in the collection; runs written: {runs}\n")
        print("| measured | calls each | uncached p50 / p99 ms | cached p50 / p99 ms | ratio p50 / total | load avg |")
        print("| --- | ---: | ---: | ---: | ---: | --- |")
        for name, n, base, cand, loads in rows:
            print(
                f"| {name} | {n} | {ms(base, 0.5):.2f} / {ms(base, 0.99):.2f} | {ms(cand, 0.5):.2f} / {ms(cand, 0.99):.2f} | "
                f"{ms(base, 0.5) / ms(cand, 0.5):.1f}x / {sum(base) / sum(cand):.1f}x | {loads} |"
            )
    finally:
        await broker.close(grace=5)
        await client.drop_database(database)
        await client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rules", type=int, default=50, help="rules of the measured account, and of every other")
    parser.add_argument("--noise-accounts", type=int, default=400, help="other accounts in the rules collection")
    parser.add_argument("--lookups", type=int, default=200, help="rule look-ups of each kind")
    parser.add_argument("--messages", type=int, default=100, help="messages handled by each consumer")
    args = parser.parse_args()
    amqp_url = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
    mongodb_uri = os.environ.get("MONGODB_URI", "mongodb://127.0.0.1:27017/")
    with vhost(amqp_url) as private:
        asyncio.run(run(args, private, mongodb_uri))


if __name__ == "__main__":
    main()
