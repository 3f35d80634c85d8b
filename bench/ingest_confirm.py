"""The broker's side of ingest's 250: publish-with-confirm latency by queue type, body size and channel count.

`CONCURRENCY` publishers (like SMTP sessions) each publish persistent messages to a durable queue and wait for
the confirm, one at a time, over one connection spread over `channels` confirming channels. Every variant runs in
turns (round-robin, short slices), so they share the machine's and the node's state.

    eval "$(scripts/deps.sh)" && uv run python bench/ingest_confirm.py [--seconds 4] [--rounds 3]
"""

import argparse
import asyncio
import itertools
import os
import statistics
import sys
import time
from pathlib import Path

import aio_pika

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest_smtp import vhost


async def run_slice(connection, queue_type: str, size: int, concurrency: int, channels: int, seconds: float):
    chans = [await connection.channel(publisher_confirms=True) for _ in range(channels)]
    name = f"confirm.{queue_type}"
    await chans[0].declare_queue(name, durable=True, arguments={"x-queue-type": queue_type})
    body = os.urandom(size)
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def publisher(channel) -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            message = aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
            await channel.default_exchange.publish(message, routing_key=name, mandatory=True)
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(publisher(chans[i % channels]) for i in range(concurrency)))
    elapsed = time.perf_counter() - started
    for channel in chans:
        await channel.close()
    return len(latencies) / elapsed, statistics.mean(latencies), sorted(latencies)[int(len(latencies) * 0.99) - 1]


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--concurrency", default="8,64")
    options = parser.parse_args()
    amqp_url = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
    variants = list(
        itertools.product(
            ("quorum", "classic"), (1400, 70 * 1024), [int(c) for c in options.concurrency.split(",")], (1, 8)
        )
    )
    results: dict[tuple, list[tuple[float, float, float]]] = {v: [] for v in variants}
    load = [os.getloadavg()[0]]
    with vhost(amqp_url) as url:
        connection = await aio_pika.connect(url)
        for _ in range(options.rounds):
            for variant in variants:
                results[variant].append(await run_slice(connection, *variant, options.seconds))
            load.append(os.getloadavg()[0])
        await connection.close()
    print(
        f"{options.rounds} rounds of {options.seconds} s per variant; load average: "
        + ", ".join(f"{x:.1f}" for x in load)
    )
    print(f"{'queue':8} {'body':>7} {'publishers':>10} {'channels':>8} {'msgs/s':>8} {'mean ms':>8} {'p99 ms':>8}")
    for (queue_type, size, concurrency, channels), runs in results.items():
        rate = statistics.mean(r[0] for r in runs)
        mean = statistics.mean(r[1] for r in runs) * 1000
        p99 = max(r[2] for r in runs) * 1000
        print(f"{queue_type:8} {size // 1024:>5}KB {concurrency:>10} {channels:>8} {rate:8.0f} {mean:8.1f} {p99:8.1f}")


if __name__ == "__main__":
    asyncio.run(main())
