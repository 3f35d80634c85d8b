"""What tracing costs the broker's hot path when it is off (the default), and when it is on.

Three variants of the same `Broker`, in turns (round-robin), in one process against the local RabbitMQ:
- `baseline`: `broker.tracing` replaced by stand-ins that do nothing at all (the code as it was before tracing);
- `off`: the real helpers with tracing off (the default: `OTEL_TRACES_EXPORTER` unset);
- `on`: an SDK TracerProvider with a batch processor and an exporter that drops what it gets (the cost of making,
  propagating and handing over the spans, without a collector's network time).
Each round publishes `--messages` events (confirmed, `--concurrency` publishers) to a queue whose consumer acks
them, and times from the first publish to the last handler call. Then the helpers alone, per message, in a tight
loop (no I/O): what `off` adds in nanoseconds.

    eval "$(scripts/deps.sh)" && uv run python bench/tracing_overhead.py [--messages 2000] [--rounds 3]
"""

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import time
import timeit
import types
import uuid
from pathlib import Path

import aio_pika

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from mailstream_common import broker as broker_module
from mailstream_common import topology, tracing
from mailstream_common.broker import Broker, Delivery
from mailstream_common.contracts import StreamChanged

_NULL = contextlib.nullcontext()


def _untraced() -> types.SimpleNamespace:
    """The tracing calls the broker makes, doing nothing: the code path as it was before tracing existed."""
    return types.SimpleNamespace(
        publishing=lambda *a, **k: _NULL,
        consuming=lambda *a, **k: _NULL,
        inject=lambda headers: None,
        tag_event=lambda span, event: None,
        mark_outcome=lambda span, outcome: None,
        mark_error=lambda span, error: None,
        note_outcome=lambda outcome, **k: None,
    )


class _Drop(SpanExporter):
    def export(self, spans):
        return SpanExportResult.SUCCESS


def _event() -> StreamChanged:
    return StreamChanged(
        change="created",
        version=1,
        account_id="a1",
        topic_id="t1",
        stream_id=uuid.uuid4().hex,
        address="support@acme.test",
        forwarding_address="x@in.mailstream.test",
        allow_agent_send=True,
        correlation_id="c1",
    )


async def one_round(amqp_url: str, messages: int, concurrency: int) -> float:
    """Messages per second through publish (confirmed) -> consume -> ack."""
    broker = Broker(amqp_url, service="bench")
    await broker.connect()
    done = asyncio.Event()
    handled = 0

    async def handle(event: StreamChanged, delivery: Delivery) -> None:
        nonlocal handled
        handled += 1
        if handled == messages:
            done.set()

    spec = topology.QueueSpec(f"bench.tracing.{uuid.uuid4().hex[:8]}", (StreamChanged,), retry_delays=(1,))
    broker.consume(spec, handle, StreamChanged, prefetch=64)
    await broker.start()
    events = [_event() for _ in range(messages)]
    started = time.perf_counter()

    async def publisher(share: list[StreamChanged]) -> None:
        for event in share:
            await broker.publish(event)

    await asyncio.gather(*(publisher(events[i::concurrency]) for i in range(concurrency)))
    await done.wait()
    elapsed = time.perf_counter() - started
    await broker.close()
    connection = await aio_pika.connect(amqp_url)
    channel = await connection.channel()
    for name in (spec.name, spec.dead_letter_queue, *(spec.retry_queue(t) for t in spec.retry_delays)):
        with contextlib.suppress(Exception):
            await channel.queue_delete(name)
    await connection.close()
    return messages / elapsed


def helpers_alone(number: int) -> dict[str, float]:
    """ns per message of the tracing calls one publish and one consume make, tracing off, vs. doing nothing."""
    event, headers = _event(), {"x-event": "stream.changed"}
    untraced = _untraced()

    def with_helpers(t) -> None:
        with t.publishing(event, "mailstream", "stream.changed", headers):
            pass
        with t.consuming("q", headers, attempt=1, redelivered=False) as span:
            t.tag_event(span, event)
            t.mark_outcome(span, "ack")

    def log_fields() -> None:
        tracing.current_ids()

    def no_calls() -> None:
        pass

    results = {}
    for name, call in (
        ("no tracing calls at all (the loop itself)", no_calls),
        ("do-nothing stand-ins (the `baseline` variant)", lambda: with_helpers(untraced)),
        ("helpers, tracing off", lambda: with_helpers(tracing)),
        ("log line's current_ids(), off", log_fields),
    ):
        best = min(timeit.repeat(call, number=number, repeat=5))
        results[name] = best / number * 1e9
    return results


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8)
    options = parser.parse_args()
    amqp_url = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(_Drop()))
    real = broker_module.tracing
    rates: dict[str, list[float]] = {"baseline": [], "off": [], "on": []}
    await one_round(amqp_url, 200, options.concurrency)  # warm-up: connections, queue declarations, imports
    for _ in range(options.rounds):
        for variant in rates:
            broker_module.tracing = _untraced() if variant == "baseline" else real
            if variant == "on":
                with tracing.enabled_with(provider):
                    rates[variant].append(await one_round(amqp_url, options.messages, options.concurrency))
            else:
                rates[variant].append(await one_round(amqp_url, options.messages, options.concurrency))
    broker_module.tracing = real
    provider.shutdown()

    print(
        f"publish (confirmed) -> consume -> ack, {options.messages} messages x {options.rounds} rounds, "
        f"concurrency {options.concurrency}, load average {os.getloadavg()[0]:.1f}"
    )
    print("| variant | median msg/s | rounds (msg/s) | median / baseline |")
    print("| --- | ---: | --- | ---: |")
    base = statistics.median(rates["baseline"])
    for variant, values in rates.items():
        median = statistics.median(values)
        print(f"| {variant} | {median:,.0f} | {', '.join(f'{v:,.0f}' for v in values)} | {median / base:.3f} |")
    print()
    print("| helpers alone, per message (one publish + one consume) | ns |")
    print("| --- | ---: |")
    for name, ns in helpers_alone(200_000).items():
        print(f"| {name} | {ns:,.0f} |")


if __name__ == "__main__":
    asyncio.run(main())
