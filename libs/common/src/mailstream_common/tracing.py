"""OpenTelemetry traces: one trace per inbound mail and per agent reply, across every service and queue.

Off unless the standard variables switch it on: `OTEL_TRACES_EXPORTER` (`otlp`, `console`, or both, comma
separated; `none` is off) or an OTLP endpoint (`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`);
`OTEL_SDK_DISABLED=true` wins over both. Everything else is the SDK's own: `OTEL_SERVICE_NAME` (default
`mailstream-<service>`), `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER`, `OTEL_BSP_*`, `OTEL_EXPORTER_OTLP_*`.
The OTLP exporter speaks HTTP/protobuf (port 4318), which every collector accepts.

Off, the helpers here return before touching OpenTelemetry (a module-level flag), so the hot paths pay one
attribute read; the SDK and the instrumentations are not even imported.

The trace crosses RabbitMQ as a W3C `traceparent` (and `tracestate`) in the AMQP headers: `broker.Broker` injects it
at publish and extracts it at consume; a retry or dead-letter copy carries the context of the attempt that failed.
Spans carry the ids people search by (`mailstream.mail_id`, `.message_id`, `.conversation_id`, `.account_id`, ...)
and domains, never content or a full address: what the instrumentations record (URLs, exception messages) goes
through `scrub` on its way out, which drops query strings and keeps only the domain of anything that looks like an
address.
"""

import contextlib
import logging
import os
import re
from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

log = logging.getLogger(__name__)

TRACER_NAME = "mailstream"
_tracer = trace.get_tracer(TRACER_NAME)
_enabled = False

# Event fields that are identifiers worth searching by; each becomes `mailstream.<field>` on a span.
ID_FIELDS = (
    "mail_id",
    "message_id",
    "conversation_id",
    "account_id",
    "stream_id",
    "topic_id",
    "rule_id",
    "trigger_message_id",
    "message_id_header",
    "kind",
    "status",
)
# Attribute values that are identifiers, not addresses, although a Message-ID looks like one.
_NOT_ADDRESSES = frozenset({"mailstream.message_id_header"})
_ADDRESS = re.compile(r"[A-Za-z0-9.!#$&'*+=?^_`{|}~%-]+(?:@|%40)((?:[A-Za-z0-9-]+\.)+[A-Za-z0-9-]+)", re.IGNORECASE)
_URL_KEYS = frozenset({"url.full", "http.url", "http.target", "url.path", "url.query"})
_HEALTH_ROUTES = "healthz,readyz,metrics"
_OFF = contextlib.nullcontext()  # what every span helper returns when tracing is off: reusable, costs nothing


def enabled() -> bool:
    return _enabled


def wanted(env: Mapping[str, str]) -> bool:
    """Whether the standard OTEL_* variables ask for traces: an exporter other than `none`, or an OTLP endpoint."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporters = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporters:
        return any(name.strip() not in ("", "none") for name in exporters.split(","))
    return bool(env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


def configure_tracing(service: str, env: Mapping[str, str] | None = None) -> bool:
    """Install the SDK and the instrumentations (pymongo, httpx) when the environment asks; True if it did.

    Call once per process before any database or HTTP client exists (`service.run` does); FastAPI apps are
    instrumented one by one (`instrument_app`, which `ops.HttpServer` calls)."""
    global _enabled
    env = os.environ if env is None else env
    if _enabled or not wanted(env):
        return _enabled
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.instrumentation.pymongo import PymongoInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": f"mailstream-{service}"}))
    for exporter in _exporters(env):
        provider.add_span_processor(BatchSpanProcessor(ScrubbingExporter(exporter)))
    trace.set_tracer_provider(provider)
    PymongoInstrumentor().instrument(tracer_provider=provider)  # command names and collections, never documents
    HTTPXClientInstrumentor().instrument(tracer_provider=provider)
    _enabled = True
    log.info("tracing on", extra={"exporters": env.get("OTEL_TRACES_EXPORTER") or "otlp"})
    return True


def _exporters(env: Mapping[str, str]) -> list[Any]:
    names = [n.strip() for n in (env.get("OTEL_TRACES_EXPORTER") or "otlp").lower().split(",") if n.strip()]
    chosen: list[Any] = []
    for name in names:
        if name == "otlp":
            protocol = env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
            if protocol and protocol != "http/protobuf":
                log.warning("only OTLP over http/protobuf is built in; using it", extra={"asked": protocol})
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            chosen.append(OTLPSpanExporter())
        elif name == "console":
            from opentelemetry.sdk.trace.export import ConsoleSpanExporter

            chosen.append(ConsoleSpanExporter())
        elif name != "none":
            log.warning("unknown OTEL_TRACES_EXPORTER entry ignored", extra={"exporter": name})
    return chosen


def instrument_app(app: Any) -> None:
    """Server spans for a FastAPI app (the W3C context of the caller, e.g. the gateway, is their parent).
    The ops routes (/healthz, /readyz, /metrics) are left out unless OTEL_PYTHON_FASTAPI_EXCLUDED_URLS says."""
    if not _enabled:
        return
    try:
        from fastapi import FastAPI
    except ImportError:  # a service without an HTTP API (ingest's ops routes are plain Starlette)
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    if isinstance(app, FastAPI):
        FastAPIInstrumentor.instrument_app(
            app,
            excluded_urls=os.environ.get("OTEL_PYTHON_FASTAPI_EXCLUDED_URLS", _HEALTH_ROUTES),
            exclude_spans=["receive", "send"],
        )


# --- the broker hops ------------------------------------------------------------------------------------------------


def inject(headers: MutableMapping[str, Any]) -> None:
    """Put the current trace context (`traceparent`, `tracestate`) into AMQP headers; nothing when off."""
    if _enabled:
        propagate.inject(headers)


def event_attributes(event: Any) -> dict[str, Any]:
    """The searchable ids of a message contract (`mailstream.<field>`), its event id and correlation id.

    A mail for several streams names every account and stream: singly when there is one, as a list otherwise."""
    attributes: dict[str, Any] = {"messaging.message.id": event.event_id}
    if event.correlation_id:
        attributes["messaging.message.conversation_id"] = event.correlation_id
        attributes["mailstream.correlation_id"] = event.correlation_id
    for field in ID_FIELDS:
        value = getattr(event, field, None)
        if isinstance(value, str) and value:
            attributes[f"mailstream.{field}"] = value
    targets = getattr(event, "targets", None) or ()
    for field in ("account_id", "stream_id"):
        values = sorted({getattr(target, field) for target in targets})
        if len(values) == 1:
            attributes[f"mailstream.{field}"] = values[0]
        elif values:
            attributes[f"mailstream.{field}s"] = values
    return attributes


def publishing(
    event: Any, exchange: str, routing_key: str, headers: MutableMapping[str, Any]
) -> contextlib.AbstractContextManager[None]:
    """A producer span around one publish (until the broker's confirm); its context goes into `headers`."""
    return _publishing(event, exchange, routing_key, headers) if _enabled else _OFF


@contextlib.contextmanager
def _publishing(event: Any, exchange: str, routing_key: str, headers: MutableMapping[str, Any]) -> Iterator[None]:
    attributes = {
        "messaging.system": "rabbitmq",
        "messaging.operation.type": "send",
        "messaging.destination.name": exchange,
        "messaging.rabbitmq.destination.routing_key": routing_key,
        "mailstream.event": event.event_name,
        **event_attributes(event),
    }
    with _tracer.start_as_current_span(f"publish {event.event_name}", kind=SpanKind.PRODUCER, attributes=attributes):
        propagate.inject(headers)
        yield


def consuming(
    queue: str, headers: Mapping[str, Any], *, attempt: int, redelivered: bool
) -> contextlib.AbstractContextManager[Span | None]:
    """A consumer span around the handling of one delivery, child of the publisher's span in `headers`."""
    return _consuming(queue, headers, attempt, redelivered) if _enabled else _OFF


def extract(headers: Mapping[str, Any]) -> Any:
    """The trace context in AMQP headers (text, or bytes from a client that sent them so)."""
    carrier = {}
    for key in ("traceparent", "tracestate"):
        value = headers.get(key)
        if isinstance(value, bytes):
            value = value.decode("ascii", "replace")
        if isinstance(value, str):
            carrier[key] = value
    return propagate.extract(carrier)


@contextlib.contextmanager
def _consuming(queue: str, headers: Mapping[str, Any], attempt: int, redelivered: bool) -> Iterator[Span | None]:
    parent = extract(headers)
    attributes = {
        "messaging.system": "rabbitmq",
        "messaging.operation.type": "process",
        "messaging.destination.name": queue,
        "mailstream.event": str(headers.get("x-event", "")),
        "mailstream.attempt": attempt,
        "mailstream.redelivered": redelivered,
    }
    with _tracer.start_as_current_span(
        f"process {queue}", context=parent, kind=SpanKind.CONSUMER, attributes=attributes, record_exception=False
    ) as span:
        yield span


def tag_event(span: Span | None, event: Any) -> None:
    if span is not None:
        span.set_attributes(event_attributes(event))


def mark_outcome(span: Span | None, outcome: str) -> None:
    """How a delivery ended: `ack`, `requeued` (and `retry`, `dead-lettered` through `note_outcome`)."""
    if span is not None:
        span.set_attribute("mailstream.outcome", outcome)


def note_outcome(outcome: str, **attributes: Any) -> None:
    """`mark_outcome` on the current span, for code that does not hold it (the retry and dead-letter steps)."""
    if _enabled:
        current = trace.get_current_span()
        current.set_attribute("mailstream.outcome", outcome)
        current.set_attributes({f"mailstream.{k}": v for k, v in attributes.items()})


def mark_error(span: Span | None, error: BaseException | str) -> None:
    """A failed step, named by the error's type (or a short word) only: an error's message may quote the mail."""
    if span is not None:
        name = error if isinstance(error, str) else type(error).__qualname__
        span.set_status(Status(StatusCode.ERROR, name))
        span.set_attribute("error.type", name)


# --- spans of our own -----------------------------------------------------------------------------------------------


def span(name: str, *, kind: SpanKind = SpanKind.INTERNAL, **attributes: Any) -> contextlib.AbstractContextManager[Any]:
    """A span around a step (the SMTP DATA command, a relay transaction); None when tracing is off."""
    return _span(name, kind, attributes) if _enabled else _OFF


@contextlib.contextmanager
def _span(name: str, kind: SpanKind, attributes: dict[str, Any]) -> Iterator[Span]:
    with _tracer.start_as_current_span(name, kind=kind, attributes=attributes, record_exception=False) as current:
        yield current


def set_attributes(span: Span | None, **attributes: Any) -> None:
    if span is not None:
        span.set_attributes({k: v for k, v in attributes.items() if v is not None})


def domain_of(address: str) -> str:
    """What a span may say of an address: its domain, lower-cased ('' for the null sender)."""
    return address.rpartition("@")[2].strip(" <>").lower()


def domains_of(addresses: Sequence[str]) -> list[str]:
    return sorted({domain_of(a) for a in addresses if a})


# --- what leaves the process ----------------------------------------------------------------------------------------


def scrub(key: str, value: Any) -> Any:
    """An attribute value as it may leave the process: no query string on a URL, no local part of an address."""
    if isinstance(value, str):
        if key in _URL_KEYS:
            value = "" if key == "url.query" else value.split("?", 1)[0]
        return value if key in _NOT_ADDRESSES else _ADDRESS.sub(r"*@\1", value)
    if isinstance(value, tuple | list):
        return tuple(scrub(key, v) for v in value)
    return value


def _scrubbed(attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    return {key: scrub(key, value) for key, value in (attributes or {}).items()}


class ScrubbingExporter:
    """Wraps a span exporter: every span's name, attributes and events pass `scrub` on the way out (in the
    batch processor's thread, off the hot path)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def export(self, spans: Sequence[Any]) -> Any:
        from opentelemetry.sdk.trace import Event, ReadableSpan

        clean = [
            ReadableSpan(
                name=scrub("span.name", s.name),
                context=s.context,
                parent=s.parent,
                resource=s.resource,
                attributes=_scrubbed(s.attributes),
                events=[Event(e.name, _scrubbed(e.attributes), e.timestamp) for e in s.events],
                links=s.links,
                kind=s.kind,
                status=s.status,
                start_time=s.start_time,
                end_time=s.end_time,
                instrumentation_scope=s.instrumentation_scope,
            )
            for s in spans
        ]
        return self.inner.export(clean)

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


@contextlib.contextmanager
def enabled_with(provider: Any) -> Iterator[None]:
    """Tracing on with `provider` (an SDK TracerProvider with an in-memory exporter, say) for the duration: for
    tests, which must not install a process-wide provider or instrument every client of the test process."""
    global _tracer, _enabled
    saved = _tracer, _enabled
    _tracer, _enabled = provider.get_tracer(TRACER_NAME), True
    try:
        yield
    finally:
        _tracer, _enabled = saved


# --- log lines ------------------------------------------------------------------------------------------------------


def current_ids() -> tuple[str, str] | None:
    """(trace_id, span_id) in hex of the active span, for log lines; None when there is none (or tracing is off)."""
    if not _enabled:
        return None
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return format(context.trace_id, "032x"), format(context.span_id, "016x")
