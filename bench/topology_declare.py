"""How long declaring the system's queues takes, by retry-tier layout: what every service does at start-up.

Three layouts of the same work queues (`topology.WORK_QUEUES`), each in a fresh vhost of the local broker, in turns
(round-robin over `--rounds`), so they share the machine's and the node's state:

- `classic per queue` (the baseline): a classic TTL tier per work queue and delay (`<queue>.retry.<N>s`), the
  layout before the shared tiers; dead-letters at most once.
- `quorum per queue`: the same tiers as quorum queues dead-lettering at least once (the reverted attempt).
- `shared quorum` (`topology.declare_queue` now): one quorum tier per distinct delay for the whole system.

"cold" is the first declaration in an empty vhost (queues created), "warm" a second one (every queue exists: a
service restarting). Ratios are against the baseline's median in the same run.

    eval "$(scripts/deps.sh)" && uv run --frozen python bench/topology_declare.py [--rounds 5] [--chart out.png]
"""

import argparse
import asyncio
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aio_pika
from aio_pika.abc import AbstractChannel

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest_smtp import vhost

from mailstream_common import topology

SPECS = [spec for spec in topology.WORK_QUEUES if not spec.replica_local]


async def _per_queue_tiers(channel: AbstractChannel, spec: topology.QueueSpec, quorum: bool) -> None:
    exchange = await topology.declare_exchange(channel)
    queue = await channel.declare_queue(spec.name, durable=True, arguments={"x-queue-type": "quorum"})
    await channel.declare_queue(spec.dead_letter_queue, durable=True, arguments={"x-queue-type": "quorum"})
    for delay in spec.retry_delays:
        arguments = {
            "x-message-ttl": delay * 1000,
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": spec.name,
        }
        if quorum:
            arguments |= {
                "x-queue-type": "quorum",
                "x-dead-letter-strategy": "at-least-once",
                "x-overflow": "reject-publish",
            }
        await channel.declare_queue(f"{spec.name}.retry.{delay}s", durable=True, arguments=arguments)
    for event in spec.events:
        await queue.bind(exchange, routing_key=topology.routing_key(event))


async def classic_per_queue(channel: AbstractChannel, spec: topology.QueueSpec) -> None:
    await _per_queue_tiers(channel, spec, quorum=False)


async def quorum_per_queue(channel: AbstractChannel, spec: topology.QueueSpec) -> None:
    await _per_queue_tiers(channel, spec, quorum=True)


async def shared_quorum(channel: AbstractChannel, spec: topology.QueueSpec) -> None:
    await topology.declare_queue(channel, spec)


LAYOUTS: dict[str, Callable[[AbstractChannel, topology.QueueSpec], Awaitable[None]]] = {
    "classic per queue": classic_per_queue,
    "quorum per queue": quorum_per_queue,
    "shared quorum": shared_quorum,
}


async def declare_all(url: str, layout) -> tuple[float, float, int]:
    """(cold seconds, warm seconds, queues in the vhost)."""
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        timings = []
        for _ in range(2):
            started = time.perf_counter()
            for spec in SPECS:
                await layout(channel, spec)
            timings.append(time.perf_counter() - started)
    finally:
        await connection.close()
    return timings[0], timings[1], queues_in(url)


def queues_in(url: str) -> int:
    import subprocess
    from urllib.parse import unquote, urlsplit

    name = unquote(urlsplit(url).path[1:])
    out = subprocess.run(["rabbitmqctl", "-q", "list_queues", "-p", name, "name"], capture_output=True, check=True)
    return len([line for line in out.stdout.decode().splitlines() if line.strip() and line.strip() != "name"])


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--chart", type=Path, help="write a bar chart (PNG) of the medians")
    args = parser.parse_args()
    amqp_url = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
    results: dict[str, dict[str, list[float]]] = {name: {"cold": [], "warm": []} for name in LAYOUTS}
    counts: dict[str, int] = {}
    for round_number in range(args.rounds):
        for name, layout in LAYOUTS.items():
            with vhost(amqp_url) as url:
                cold, warm, count = await declare_all(url, layout)
            results[name]["cold"].append(cold)
            results[name]["warm"].append(warm)
            counts[name] = count
            print(f"round {round_number + 1} {name:18} cold {cold:6.3f} s  warm {warm:6.3f} s", file=sys.stderr)
    baseline = {phase: statistics.median(results["classic per queue"][phase]) for phase in ("cold", "warm")}
    print(f"{len(SPECS)} work queues, {args.rounds} rounds; medians (min-max), ratio to the baseline's median")
    print("| layout | queues | cold declare | ratio | warm declare | ratio |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, phases in results.items():
        cells = []
        for phase in ("cold", "warm"):
            values = phases[phase]
            median = statistics.median(values)
            cells.append(f"{median:.3f} s ({min(values):.3f}-{max(values):.3f})")
            cells.append(f"{median / baseline[phase]:.2f}x")
        print(f"| {name} | {counts[name]} | " + " | ".join(cells) + " |")
    if args.chart:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        names = list(results)
        figure, axis = plt.subplots(figsize=(7, 3.5))
        width = 0.38
        for offset, phase in ((-width / 2, "cold"), (width / 2, "warm")):
            medians = [statistics.median(results[name][phase]) for name in names]
            axis.bar([i + offset for i in range(len(names))], medians, width, label=phase)
        axis.set_xticks(range(len(names)), [f"{n}\n({counts[n]} queues)" for n in names])
        axis.set_ylabel("seconds to declare every work queue")
        axis.set_title(f"Declaring the topology ({len(SPECS)} work queues, median of {args.rounds})")
        axis.legend()
        figure.tight_layout()
        figure.savefig(args.chart, dpi=120)


if __name__ == "__main__":
    asyncio.run(main())
