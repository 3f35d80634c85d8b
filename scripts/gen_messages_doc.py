"""Write docs/messages.md from the contracts themselves, so the document cannot drift from the code.

Run: uv run python scripts/gen_messages_doc.py   (tests/common/test_contracts.py fails when the file is stale)
"""

import sys
from pathlib import Path

from mailstream_common import asyncapi, topology
from mailstream_common.contracts import ALL_EVENTS, Event

DOC = Path(__file__).resolve().parent.parent / "docs" / "messages.md"

INTRO = """# Messages on the broker

Generated from `libs/common/src/mailstream_common/contracts/` by `scripts/gen_messages_doc.py`; do not edit by
hand (a test fails when this file and the code disagree). The same contracts as an AsyncAPI 3.0 document:
[asyncapi.json](asyncapi.json) (`scripts/gen_asyncapi.py`; the gateway serves it at `/asyncapi.json`).

Every message is JSON on the topic exchange `{exchange}`, published persistent with publisher confirms. The
routing key is the event name. AMQP headers: `x-event` (the event name), `x-schema-version`, and the AMQP
`correlation_id` property, which follows one mail or one API request through every queue and log line. Consumers
add `x-attempt` and `x-first-seen` when they schedule a retry, `x-origin-exchange` and `x-origin-routing-key`
(where it was first published) at its first failure, and `x-origin-queue`, `x-error` and `x-dead-lettered-at` when
they dead-letter; a copy an operator requeued carries `x-requeues`. With tracing on, `traceparent` and `tracestate`
carry the W3C trace context (docs/operations.md, "Following one mail"); retry and dead-letter copies keep it.
Fields every message has: `event_id` (unique per publication), `occurred_at` (UTC),
`correlation_id`. Bytes (`raw`) travel as standard base64.

Queues: each consumer owns a durable quorum queue; failures wait in the shared delay tiers `mailstream.retry.<N>s`
(quorum queues with a TTL that dead-letter at least once back into the queue, through the exchanges
`mailstream.retry` and `mailstream.retry.due`) and, after the attempt cap or at once for a message that can never
succeed, go to `<queue>.dead`, which inbox's dead-letter keeper empties into its `dead_letters` collection. Replica-local queues (`<service>.replica.<id>`) are exclusive and vanish with their process.

`stream.changed`, `topic.changed` and `canned_response.changed` carry the entity's whole state (as far as any
consumer needs it) and its `version`, the revision inbox increments with every write; each consuming service keeps a
projection that applies an event only when its version is newer (docs/architecture.md, "Each service owns its
data"), so duplicates, redeliveries, reordering and "snapshot" republications are harmless.

| event | published by | consumed from |
| --- | --- | --- |
{table}
"""


def _producers(event: type[Event]) -> str:
    """Who publishes it, from the same table as the AsyncAPI document (docs/asyncapi.json)."""
    return ", ".join(f"{service} ({when})" for service, when in asyncapi.PUBLISHERS[event.event_name])


REPLICA_CONSUMERS = {
    "stream.changed": "ingest replica queues (RCPT cache), sender replica queues (stream cache)",
    "domain.changed": "sender replica queues (signing-key cache)",
    "api_key.revoked": "gateway replica queues (API-key cache)",
}


def _consumers(event: type[Event]) -> str:
    names = [f"`{q.name}`" for q in topology.WORK_QUEUES if event in q.events]
    if event in topology.GATEWAY_LIVE_EVENTS:
        names.append("gateway replica queues (SSE)")
    if event.event_name in REPLICA_CONSUMERS:
        names.append(REPLICA_CONSUMERS[event.event_name])
    return ", ".join(names) or "(none yet)"


def _type_of(prop: dict) -> str:
    if "$ref" in prop:
        return prop["$ref"].rsplit("/", 1)[-1]
    if "anyOf" in prop:
        return " | ".join(_type_of(p) for p in prop["anyOf"])
    if prop.get("type") == "array":
        return f"list[{_type_of(prop.get('items', {}))}]"
    if "enum" in prop:
        return " | ".join(repr(v) for v in prop["enum"])
    if "const" in prop:
        return repr(prop["const"])
    if "oneOf" in prop:
        return " | ".join(_type_of(p) for p in prop["oneOf"])
    if prop.get("type") == "string":
        return prop.get("format", "string")
    return prop.get("type", "any")


def _fields(schema: dict, skip: set[str]) -> list[str]:
    required = set(schema.get("required", []))
    rows = []
    for name, prop in schema.get("properties", {}).items():
        if name in skip:
            continue
        flag = "yes" if name in required else "no"
        rows.append(f"| `{name}` | {_type_of(prop)} | {flag} | {prop.get('description', '')} |")
    return rows


def render() -> str:
    table = "\n".join(
        f"| [`{e.event_name}`](#{e.event_name.replace('.', '')}) | {_producers(e)} | {_consumers(e)} |"
        for e in ALL_EVENTS
    )
    parts = [INTRO.format(exchange=topology.EVENTS_EXCHANGE, table=table)]
    shared: dict[str, dict] = {}
    for event in ALL_EVENTS:
        schema = event.model_json_schema(by_alias=True, mode="serialization")
        shared.update(schema.get("$defs", {}))
        parts.append(f"## {event.event_name}\n")
        parts.append(
            f"`{event.__module__.replace('mailstream_common.', '')}.{event.__name__}`, schema version "
            f"{event.schema_version}. {' '.join((event.__doc__ or '').split())}\n"
        )
        parts.append("| field | type | required | meaning |\n| --- | --- | --- | --- |")
        parts.extend(_fields(schema, {"event_id", "occurred_at", "correlation_id"}))
        parts.append("")
    parts.append("## Shared value types\n")
    for name in sorted(shared):
        schema = shared[name]
        parts.append(f"### {name}\n")
        if schema.get("description"):
            parts.append(" ".join(schema["description"].split()) + "\n")
        if "properties" in schema:
            parts.append("| field | type | required | meaning |\n| --- | --- | --- | --- |")
            parts.extend(_fields(schema, set()))
        else:
            parts.append(f"{_type_of(schema)}")
        parts.append("")
    return "\n".join(parts).rstrip() + "\n"


if __name__ == "__main__":
    DOC.parent.mkdir(exist_ok=True)
    DOC.write_text(render())
    print(f"wrote {DOC}", file=sys.stderr)
