"""Write docs/messages.md from the contracts themselves, so the document cannot drift from the code.

Run: uv run python scripts/gen_messages_doc.py   (tests/common/test_contracts.py fails when the file is stale)
"""

import sys
from pathlib import Path

from mailstream_common import topology
from mailstream_common.contracts import ALL_EVENTS, Event

DOC = Path(__file__).resolve().parent.parent / "docs" / "messages.md"

INTRO = """# Messages on the broker

Generated from `libs/common/src/mailstream_common/contracts/` by `scripts/gen_messages_doc.py`; do not edit by
hand (a test fails when this file and the code disagree).

Every message is JSON on the topic exchange `{exchange}`, published persistent with publisher confirms. The
routing key is the event name. AMQP headers: `x-event` (the event name), `x-schema-version`, and the AMQP
`correlation_id` property, which follows one mail or one API request through every queue and log line. Consumers
add `x-attempt` and `x-first-seen` when they schedule a retry, and `x-origin-queue` and `x-error` when they
dead-letter. Fields every message has: `event_id` (unique per publication), `occurred_at` (UTC),
`correlation_id`. Bytes (`raw`) travel as standard base64.

Queues: each consumer owns a durable quorum queue; failures go to `<queue>.retry.<N>s` (TTL queues that
dead-letter back into the queue) and, after the attempt cap or at once for a message that can never succeed, to
`<queue>.dead`. Replica-local queues (`<service>.replica.<id>`) are exclusive and vanish with their process.

`stream.changed`, `topic.changed` and `canned_response.changed` carry the entity's whole state (as far as any
consumer needs it) and its `version`, the revision inbox increments with every write; each consuming service keeps a
projection that applies an event only when its version is newer (docs/architecture.md, "Each service owns its
data"), so duplicates, redeliveries, reordering and "snapshot" republications are harmless.

| event | published by | consumed from |
| --- | --- | --- |
{table}
"""

PRODUCERS = {
    "mail.received": "ingest (SMTP, before answering 250)",
    "mail.analysed": "ingest (analysis worker)",
    "message.stored": "inbox",
    "message.delivery_changed": "inbox",
    "conversation.changed": "inbox",
    "conversation.actions_requested": "automation",
    "reply.requested": "inbox (API replies, auto-replies, forwarding checks)",
    "delivery.reported": "sender (each attempt), ingest (bounces)",
    "stream.changed": "inbox (API writes, first mail; the catalogue relay; resync snapshots)",
    "topic.changed": "inbox (API writes; the catalogue relay; resync snapshots)",
    "canned_response.changed": "inbox (API writes; the catalogue relay; resync snapshots)",
    "projection.resync_requested": "ingest, sender, automation (projection empty at start); `mailstream projections"
    " resync`",
    "domain.changed": "domains",
    "api_key.revoked": "inbox (API key revoked)",
    "webhook.attempt_due": "webhook dispatcher (a new delivery, a retry), inbox (a replay by hand)",
    "webhook.subscription_disabled": "webhook dispatcher (a subscription failing for too long)",
}

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
        f"| [`{e.event_name}`](#{e.event_name.replace('.', '')}) | {PRODUCERS.get(e.event_name, '')} | {_consumers(e)} |"
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
