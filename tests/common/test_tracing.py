"""Tracing helpers: the OTEL_* switch, the W3C context in AMQP headers (also through a real RabbitMQ's retry and
dead-letter queues), the ids on spans, the scrubbing of addresses, and trace ids on log lines.

Tracing is switched on per test with an SDK provider and an in-memory exporter (`tracing.enabled_with`), never
process-wide: the test process's own clients stay uninstrumented."""

import asyncio
import io
import json
import logging
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from mailstream_common import logs, topology, tracing
from mailstream_common.broker import Broker, Delivery, Reject, Retry
from mailstream_common.contracts import MailReceived, StreamChanged
from mailstream_common.contracts.mail import Envelope, StreamTarget
from tests.support.waiting import wait_for

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Tracing on for one test; what it exported passes the same scrubbing as in production."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(tracing.ScrubbingExporter(exporter)))
    with tracing.enabled_with(provider):
        yield exporter
    provider.shutdown()


def _mail_received(**overrides) -> MailReceived:
    fields = dict(
        mail_id="mail-1",
        received_at=datetime.now(UTC),
        envelope=Envelope(mail_from="rey@example.net", rcpt_to=["f1@in.mailstream.test"]),
        targets=[StreamTarget(forwarding_address="f1@in.mailstream.test", stream_id="s1", account_id="a1")],
        raw=b"Subject: secret\r\n\r\nbody",
        raw_sha256="00",
        size=24,
        correlation_id="mail-1",
    )
    return MailReceived(**(fields | overrides))


# --- the switch -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "on"),
    [
        ({}, False),
        ({"OTEL_TRACES_EXPORTER": "none"}, False),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, True),
        ({"OTEL_TRACES_EXPORTER": "console,otlp"}, True),
        ({"OTEL_TRACES_EXPORTER": " none , "}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, False),
        ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "true"}, False),
        ({"OTEL_SERVICE_NAME": "mailstream-inbox"}, False),
    ],
)
def test_tracing_is_on_only_when_the_standard_variables_ask(env, on):
    assert tracing.wanted(env) is on


def test_off_the_helpers_do_nothing():
    assert not tracing.enabled()
    headers: dict = {"x-event": "mail.received"}
    tracing.inject(headers)
    assert headers == {"x-event": "mail.received"}
    with tracing.publishing(_mail_received(), "mailstream", "mail.received", headers):
        pass
    assert headers == {"x-event": "mail.received"}
    with tracing.consuming("q", {"traceparent": TRACEPARENT}, attempt=1, redelivered=False) as span:
        assert span is None
        assert tracing.current_ids() is None


# --- headers in, headers out ----------------------------------------------------------------------------------------


def test_publish_puts_the_producer_span_into_the_headers_and_consume_continues_it(spans):
    headers: dict = {"x-event": "mail.received"}
    with (
        tracing.span("smtp DATA", kind=SpanKind.SERVER) as root,
        tracing.publishing(_mail_received(), "mailstream", "mail.received", headers),
    ):
        pass
    producer = next(s for s in spans.get_finished_spans() if s.name == "publish mail.received")
    trace_id = format(root.get_span_context().trace_id, "032x")
    assert headers["traceparent"].split("-")[1:3] == [trace_id, f"{producer.context.span_id:016x}"]

    with tracing.consuming("ingest.analyse", headers, attempt=2, redelivered=True) as span:
        assert tracing.current_ids() == (trace_id, f"{span.get_span_context().span_id:016x}")
    consumer = next(s for s in spans.get_finished_spans() if s.name == "process ingest.analyse")
    assert consumer.kind is SpanKind.CONSUMER
    assert consumer.context.trace_id == root.get_span_context().trace_id
    assert consumer.parent.span_id == producer.context.span_id
    assert consumer.attributes["mailstream.attempt"] == 2
    assert consumer.attributes["mailstream.event"] == "mail.received"


def test_extract_reads_a_traceparent_sent_as_bytes_and_ignores_garbage(spans):
    for headers, expected in (
        ({"traceparent": TRACEPARENT.encode()}, 0x0AF7651916CD43DD8448EB211C80319C),
        ({"traceparent": "not a context"}, None),
        ({"traceparent": 7}, None),
        ({}, None),
    ):
        with tracing.consuming("q", headers, attempt=1, redelivered=False) as span:
            parent_trace = span.get_span_context().trace_id
        if expected is None:
            assert parent_trace != 0x0AF7651916CD43DD8448EB211C80319C  # a new trace, not a crash
        else:
            assert parent_trace == expected


def test_spans_carry_the_ids_people_search_by_and_no_address_or_content(spans):
    event = _mail_received(
        targets=[
            StreamTarget(forwarding_address="f1@in.mailstream.test", stream_id="s1", account_id="a1"),
            StreamTarget(forwarding_address="f2@in.mailstream.test", stream_id="s2", account_id="a1"),
        ]
    )
    with tracing.publishing(event, "mailstream", "mail.received", {}):
        pass
    [span] = spans.get_finished_spans()
    assert span.kind is SpanKind.PRODUCER
    assert span.attributes["mailstream.mail_id"] == "mail-1"
    assert span.attributes["mailstream.correlation_id"] == "mail-1"
    assert span.attributes["mailstream.account_id"] == "a1"
    assert span.attributes["mailstream.stream_ids"] == ("s1", "s2")
    assert span.attributes["messaging.message.id"] == event.event_id
    values = json.dumps({k: list(v) if isinstance(v, tuple) else v for k, v in span.attributes.items()})
    for secret in ("rey@example.net", "in.mailstream.test", "secret", "body"):
        assert secret not in values


@pytest.mark.parametrize(
    ("key", "value", "scrubbed"),
    [
        (
            "url.full",
            "http://sender:8000/v1/suppressions/rey%40example.net?x=1",
            "http://sender:8000/v1/suppressions/*@example.net",
        ),
        ("http.target", "/v1/conversations?q=refund+order+55", "/v1/conversations"),
        ("url.query", "q=rey@example.net", ""),
        ("exception.message", "refused: Rey <rey.customer+tag@mail.example.net>", "refused: Rey <*@mail.example.net>"),
        ("mailstream.rcpt_domains", ("example.net", "x@y.test"), ("example.net", "*@y.test")),
        ("mailstream.message_id_header", "<abc.123@mail.example.net>", "<abc.123@mail.example.net>"),
        ("mailstream.attempt", 3, 3),
    ],
)
def test_scrub_keeps_only_the_domain_of_an_address_and_drops_query_strings(key, value, scrubbed):
    assert tracing.scrub(key, value) == scrubbed


def test_what_leaves_the_process_is_scrubbed_events_included(spans):
    with tracing.span("lookup", **{"url.full": "http://x/v1/suppressions/rey@example.net"}) as span:
        span.add_event("exception", {"exception.message": "no such rey@example.net"})
    [exported] = spans.get_finished_spans()
    assert exported.attributes["url.full"] == "http://x/v1/suppressions/*@example.net"
    assert exported.events[0].attributes["exception.message"] == "no such *@example.net"


def test_domains_of_addresses():
    assert tracing.domains_of(["Rey@Example.NET", "b@in.test", "", "c@example.net"]) == ["example.net", "in.test"]
    assert tracing.domain_of("") == ""


# --- log lines ------------------------------------------------------------------------------------------------------


def _log_line(message: str) -> dict:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    logs.configure_logging("test-service", "INFO")
    stream = io.StringIO()
    logging.getLogger().handlers[0].setStream(stream)
    try:
        logging.getLogger("mailstream.test").info(message)
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
    return json.loads(stream.getvalue().strip().splitlines()[-1])


def test_log_lines_carry_the_active_span_ids(spans):
    with tracing.span("smtp DATA") as span:
        line = _log_line("mail accepted")
    context = span.get_span_context()
    assert line["trace_id"] == f"{context.trace_id:032x}"
    assert line["span_id"] == f"{context.span_id:016x}"
    outside = _log_line("idle")
    assert "trace_id" not in outside and "span_id" not in outside


def test_log_lines_have_no_trace_fields_when_tracing_is_off():
    line = _log_line("mail accepted")
    assert "trace_id" not in line and "span_id" not in line


# --- through a real RabbitMQ ----------------------------------------------------------------------------------------


def _stream_event() -> StreamChanged:
    return StreamChanged(
        change="created",
        version=1,
        account_id="a1",
        topic_id="t1",
        stream_id=uuid.uuid4().hex,
        address="support@acme.test",
        forwarding_address="x@in.mailstream.test",
        allow_agent_send=True,
    )


def _spec() -> topology.QueueSpec:
    return topology.QueueSpec(f"test.{uuid.uuid4().hex[:8]}", (StreamChanged,), retry_delays=(1,), max_attempts=3)


async def test_a_retried_message_stays_in_its_trace_each_attempt_under_the_one_that_failed(backends, spans):
    broker = Broker(backends.amqp_url, service="test")
    await broker.connect()
    attempts: list[tuple[int, tuple[str, str] | None]] = []

    async def handle(event: StreamChanged, delivery: Delivery) -> None:
        attempts.append((delivery.attempt, tracing.current_ids()))
        if delivery.attempt < 2:
            raise Retry("not yet", delay=1)

    spec = _spec()
    broker.consume(spec, handle, StreamChanged)
    await broker.start()
    with tracing.span("request") as root:
        await broker.publish(_stream_event())
    await wait_for(lambda: asyncio.sleep(0, len(attempts) >= 2), timeout=15, what="second attempt")
    await broker.close()

    trace_id = root.get_span_context().trace_id
    processed = [s for s in spans.get_finished_spans() if s.name == f"process {spec.name}"]
    publish = next(s for s in spans.get_finished_spans() if s.name == "publish stream.changed")
    first, second = sorted(processed, key=lambda s: s.attributes["mailstream.attempt"])
    assert {s.context.trace_id for s in (publish, first, second)} == {trace_id}
    assert first.parent.span_id == publish.context.span_id
    assert second.parent.span_id == first.context.span_id
    assert first.attributes["mailstream.outcome"] == "retry"
    assert first.attributes["error.type"] == "Retry"
    assert second.attributes["mailstream.outcome"] == "ack"
    assert [ids[0] for _, ids in attempts] == [f"{trace_id:032x}"] * 2


async def test_a_dead_letter_keeps_the_trace_context_of_the_attempt_that_gave_up(backends, spans):
    broker = Broker(backends.amqp_url, service="test")
    await broker.connect()

    async def handle(event: StreamChanged, delivery: Delivery) -> None:
        raise Reject("never")

    spec = _spec()
    broker.consume(spec, handle, StreamChanged)
    await broker.start()
    with tracing.span("request") as root:
        await broker.publish(_stream_event())

    async def dead_letter():
        channel = await broker.connection.channel()
        try:
            queue = await channel.declare_queue(spec.dead_letter_queue, passive=True)
            message = await queue.get(fail=False)
            if message is not None:
                await message.ack()
            return [message] if message is not None else None
        finally:
            await channel.close()

    [message] = await wait_for(dead_letter, timeout=15, what="dead letter")
    await broker.close()
    [consumer] = [s for s in spans.get_finished_spans() if s.name == f"process {spec.name}"]
    assert consumer.attributes["mailstream.outcome"] == "dead-lettered"
    trace_id = f"{root.get_span_context().trace_id:032x}"
    assert message.headers["traceparent"].split("-")[1:3] == [trace_id, f"{consumer.context.span_id:016x}"]
    assert message.headers["x-origin-queue"] == spec.name


# --- the switch in a process of its own ------------------------------------------------------------------------------

_PROBE = """
import sys
from mailstream_common import tracing
from mailstream_common.contracts import StreamChanged

on = tracing.configure_tracing("probe")
event = StreamChanged(change="created", version=1, account_id="a1", topic_id="t1", stream_id="s1",
                      address="support@acme.test", forwarding_address="x@in.mailstream.test", allow_agent_send=True)
with tracing.publishing(event, "mailstream", "stream.changed", {}):
    pass
print("ON" if on else "OFF", "sdk-imported" if "opentelemetry.sdk" in sys.modules else "sdk-absent", flush=True)
"""


def _probe(env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    return subprocess.run(
        [sys.executable, "-c", _PROBE], env={**clean, **env}, capture_output=True, text=True, timeout=60, check=True
    )


def test_a_process_without_otel_variables_does_not_even_import_the_sdk():
    assert _probe({}).stdout.split() == ["OFF", "sdk-absent"]


def test_a_process_with_the_console_exporter_prints_its_spans_under_its_service_name():
    out = _probe({"OTEL_TRACES_EXPORTER": "console"}).stdout
    assert out.splitlines()[0] == "ON sdk-imported"
    span = json.loads(out[out.index("{") :])  # the span the probe made, flushed at exit
    assert span["name"] == "publish stream.changed"
    assert span["kind"] == "SpanKind.PRODUCER"
    assert span["attributes"]["mailstream.stream_id"] == "s1"
    assert span["resource"]["attributes"]["service.name"] == "mailstream-probe"
    assert "support@acme.test" not in out and "x@in.mailstream.test" not in out
