"""Webhook dispatch throughput: signed deliveries per second to a local receiver, one dispatcher replica and two.

    eval "$(scripts/deps.sh)"; uv run --frozen python bench/webhook_dispatch.py [--events 2000] [--concurrency 64]

Per run: a fresh vhost and database; one subscription (message.received) whose endpoint is a real HTTP receiver
in this process (uvicorn + Starlette) that verifies every request with the Standard Webhooks reference library;
`--events` `message.stored` facts published to the broker first (they wait in `webhooks.events`), then the
dispatcher processes (`python -m mailstream_inbox.webhooks`, the real service) started. Measured: from the first
request the receiver sees to the last, (requests - 1) / seconds; each event must arrive once and verify. The
one-replica run is the baseline, the two-replica run is reported as a ratio to it. Writes a bar chart next to
docs/benchmarks.md (docs/benchmarks/webhook_dispatch.png) from the run itself.
"""

import argparse
import asyncio
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from pymongo import AsyncMongoClient

from mailstream_common import topology
from mailstream_common.broker import Broker
from mailstream_common.contracts import MessageStored
from mailstream_common.mongo import ensure_indexes
from mailstream_inbox.webhooks import repositories as repo
from mailstream_inbox.webhooks.signing import SecretBox, new_secret
from tests.support.backends import isolated_vhost
from tests.support.processes import ServiceProcess, free_port
from tests.support.webhook_receiver import Receiver

ROOT = Path(__file__).resolve().parent.parent


def fact(account_id: str, index: int, run: str) -> MessageStored:
    return MessageStored.model_validate(
        {
            "account_id": account_id,
            "topic_id": "t",
            "stream_id": "s",
            "conversation_id": f"c-{run}-{index}",
            "message_id": f"m-{run}-{index}",
            "direction": "inbound",
            "is_first_message": False,
            "from": {"name": "Ann Customer", "address": "ann@example.net"},
            "subject": f"Order {index}",
            "text": "Hello, where is my order? " * 20,
            "received_at": datetime.now(UTC),
        }
    )


async def one_run(
    amqp_url: str, mongodb_uri: str, replicas: int, events: int, concurrency: int, journal: bool = True
) -> dict:
    run = f"{replicas}r{int(time.time())}"
    database = f"bench_webhooks_{run}"
    mongo = AsyncMongoClient(mongodb_uri, tz_aware=True)
    db = mongo[database]
    await ensure_indexes(db, repo.INDEXES)
    receiver = Receiver()
    processes: list[ServiceProcess] = []
    async with receiver.running():
        url = receiver.endpoint("/bench")
        secret = new_secret()
        receiver.set_secret("/bench", secret)
        subscription = await repo.create_subscription(
            db,
            "bench-account",
            url=url,
            event_types=["message.received"],
            enabled=True,
            description="bench",
            secret_sealed=SecretBox().seal(secret),
        )
        broker = Broker(amqp_url, service="bench")
        await broker.connect()
        await broker.declare(topology.WEBHOOKS_EVENTS, topology.WEBHOOKS_ATTEMPTS)
        for index in range(events):
            await broker.publish(fact(subscription["account_id"], index, run))
        await broker.close(grace=1)
        log_dir = Path(os.environ.get("TMPDIR", "/tmp")) / f"webhook-bench-{run}"
        log_dir.mkdir(parents=True, exist_ok=True)
        for replica in range(replicas):
            port = free_port()
            process = ServiceProcess(
                f"webhooks-{replica}",
                "mailstream_inbox.webhooks",
                {
                    "AMQP_URL": amqp_url,
                    "MONGODB_URI": mongodb_uri,
                    "MONGODB_DATABASE": database,
                    "INBOX_MONGODB_DATABASE": database,
                    "WEBHOOKS_OPS_PORT": str(port),
                    "WEBHOOKS_ALLOW_PRIVATE_DESTINATIONS": "true",
                    "WEBHOOKS_CONCURRENCY": str(concurrency),
                    "LOG_LEVEL": "WARNING",
                    "MONGODB_WRITE_CONCERN_J": "true" if journal else "false",
                },
                f"http://127.0.0.1:{port}",
                log_dir,
            )
            processes.append(process.spawn())
        try:
            deadline = time.monotonic() + 600
            while len({r.webhook_id for r in receiver.at("/bench")}) < events:
                if time.monotonic() > deadline:
                    raise SystemExit(f"only {len(receiver.at('/bench'))} of {events} deliveries arrived")
                for process in processes:
                    if process.proc is not None and process.proc.poll() is not None:
                        raise SystemExit(f"{process.name} exited:\n{process.logs()}")
                await asyncio.sleep(0.05)
        finally:
            for process in processes:
                process.request_stop()
            for process in processes:
                process.stop()
    requests = receiver.at("/bench")
    subjects = [r.payload["data"]["subject"] for r in requests]
    assert all(r.verified for r in requests), "a signature did not verify"
    assert len(set(subjects)) == events, "an event is missing"
    first, last = min(r.at for r in requests), max(r.at for r in requests)
    await mongo.drop_database(database)
    await mongo.close()
    return {
        "replicas": replicas,
        "events": events,
        "requests": len(requests),
        "seconds": last - first,
        "per_second": (len(requests) - 1) / (last - first),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=64, help="WEBHOOKS_CONCURRENCY of each replica")
    parser.add_argument(
        "--no-journal",
        action="store_true",
        help="dispatchers write with MONGODB_WRITE_CONCERN_J=false: how much of the time is the database's fsync",
    )
    parser.add_argument("--chart", type=Path, default=None, help="where to draw the bar chart (default: none)")
    args = parser.parse_args()
    amqp_url = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
    mongodb_uri = os.environ.get("MONGODB_URI", "mongodb://127.0.0.1:27017/")
    results = []
    for replicas in (1, 2):
        with isolated_vhost(amqp_url) as vhost_url:
            results.append(
                await one_run(vhost_url, mongodb_uri, replicas, args.events, args.concurrency, not args.no_journal)
            )
    baseline = results[0]["per_second"]
    print(
        f"events={args.events} concurrency={args.concurrency} journal={not args.no_journal} cpus={os.cpu_count()}"
        f" python={sys.version.split()[0]}"
    )
    print("| replicas | deliveries | seconds | deliveries/s | vs one replica |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    for r in results:
        print(
            f"| {r['replicas']} | {r['requests']} | {r['seconds']:.1f} | {r['per_second']:.0f} |"
            f" {r['per_second'] / baseline:.2f}x |"
        )
    if args.chart is None:
        return
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    args.chart.parent.mkdir(parents=True, exist_ok=True)
    figure, axis = plt.subplots(figsize=(5, 3.2))
    axis.bar(
        [f"{r['replicas']} replica{'s' if r['replicas'] > 1 else ''}" for r in results],
        [r["per_second"] for r in results],
    )
    axis.set_ylabel("signed deliveries / s")
    axis.set_title(f"Webhook dispatch, {args.events} events, local receiver")
    figure.tight_layout()
    figure.savefig(args.chart, dpi=120)
    print(f"chart: {args.chart}")


if __name__ == "__main__":
    asyncio.run(main())
