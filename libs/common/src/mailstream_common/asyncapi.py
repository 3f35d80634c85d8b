"""The broker contract as an AsyncAPI 3.0 document, built from the message contracts and the topology.

One channel per event on the topic exchange (its address is the routing key), one channel per durable work queue,
a `send` operation for every service that publishes an event and a `receive` operation for every queue that gets
it; the messages' payloads are the contracts' own JSON Schemas, with an example each that the contract accepts.

`docs/asyncapi.json` is this document as committed (scripts/gen_asyncapi.py writes it; a test compares), and the
gateway serves it at `/asyncapi.json`, so the file, the endpoint and the code cannot disagree.
"""

import json
from functools import cache
from typing import Any

from pydantic.json_schema import models_json_schema

from . import topology
from .contracts import ALL_EVENTS, Event

ASYNCAPI_VERSION = "3.0.0"
DOCUMENT_VERSION = "1.0.0"
AMQP_BINDING_VERSION = "0.3.0"
SCHEMA_REF = "#/components/schemas/{model}"

#: Who publishes each event: (service, when). Every event in ALL_EVENTS must be here (a test checks).
PUBLISHERS: dict[str, tuple[tuple[str, str], ...]] = {
    "mail.received": (("ingest", "SMTP DATA, before answering 250"),),
    "mail.analysed": (("ingest", "the analysis worker, after MIME, SPF/DKIM/DMARC and forwarding detection"),),
    "message.stored": (("inbox", "a mail or reply stored in its conversation"),),
    "message.delivery_changed": (("inbox", "an outbound message's delivery state changed"),),
    "conversation.changed": (("inbox", "status, tags, assignee or priority changed"),),
    "conversation.actions_requested": (("automation", "rules matched a stored message"),),
    "reply.requested": (("inbox", "API replies, auto-replies, scheduled replies and forwarding checks"),),
    "delivery.reported": (
        ("sender", "each delivery attempt"),
        ("ingest", "a bounce (DSN) for a VERP address"),
    ),
    "stream.changed": (("inbox", "API writes, first mail, the catalogue relay, resync snapshots"),),
    "topic.changed": (("inbox", "API writes, the catalogue relay, resync snapshots"),),
    "canned_response.changed": (("inbox", "API writes, the catalogue relay, resync snapshots"),),
    "projection.resync_requested": (
        ("ingest", "its projection is empty at start"),
        ("sender", "its projection is empty at start"),
        ("automation", "its projection is empty at start"),
        ("inbox", "the operator's `mailstream projections resync`"),
    ),
    "domain.changed": (("domains", "a domain created, verified, rotated or deleted"),),
    "api_key.revoked": (("inbox", "an API key revoked"),),
    "conversation.snooze_due": (("inbox", "a conversation snoozed: the wake-up, down the timer ladder"),),
    "reply.scheduled_due": (("inbox", "a reply scheduled for later: the send time, down the timer ladder"),),
    "conversation.timeline_recorded": (("inbox", "a note or other timeline entry recorded"),),
    "webhook.attempt_due": (
        ("webhooks", "the webhook dispatcher: a new delivery, or a retry down the timer ladder"),
        ("inbox", "a delivery replayed by hand through the API"),
    ),
    "webhook.subscription_disabled": (("webhooks", "the webhook dispatcher: a subscription failing for too long"),),
    "data_request.erase_requested": (
        ("inbox", "an admin's erasure request, a retention sweep, or the relay of one the broker did not confirm"),
    ),
    "data_request.export_requested": (("inbox", "an admin's export request, or its relay"),),
    "data_request.part_done": (
        ("ingest", "its part of a data request done"),
        ("inbox", "its part of a data request done"),
        ("automation", "its part of a data request done"),
        ("domains", "its part of a data request done"),
        ("sender", "its part of a data request done"),
    ),
}

#: Replica-local queues (exclusive, auto-delete, one per process): the service and the events it binds.
REPLICA_QUEUES: tuple[tuple[str, str, tuple[type[Event], ...]], ...] = (
    ("ingest", "RCPT cache of stream routes", topology.INGEST_STREAM_EVENTS),
    ("sender", "signing-key and stream caches", topology.SENDER_REPLICA_EVENTS),
    ("inbox", "the gateway's live updates (SSE) and API-key cache", topology.GATEWAY_REPLICA_EVENTS),
)

_AMQP_HEADERS = {
    "type": "object",
    "properties": {
        "x-event": {"type": "string", "description": "The event name (also the routing key)"},
        "x-schema-version": {"type": "integer", "description": "The contract's schema version"},
        "x-attempt": {"type": "integer", "description": "Set by a consumer that schedules a retry"},
        "x-first-seen": {"type": "string", "description": "When the first attempt failed (retries)"},
        "x-origin-queue": {"type": "string", "description": "On a dead-lettered message: the queue it failed in"},
        "x-error": {"type": "string", "description": "On a dead-lettered message: why it failed"},
    },
    "required": ["x-event", "x-schema-version"],
}

# Readable example values by field name; anything not named here gets a value derived from its schema.
_EXAMPLE_VALUES: dict[str, Any] = {
    "event_id": "6f1c0e8a2b7d4c59a1e3f0b2c4d6e8fa",
    "occurred_at": "2026-03-02T09:15:00Z",
    "received_at": "2026-03-02T09:14:59Z",
    "correlation_id": "c-7d3f9a1e",
    "mail_id": "m_5b2e9c",
    "message_id": "msg_8d1f42",
    "conversation_id": "cnv_3a7c10",
    "account_id": "acc_42",
    "stream_id": "str_17",
    "topic_id": "top_5",
    "domain_id": "dom_9",
    "domain": "acme.com",
    "address": "support@acme.com",
    "mail_from": "kana@example.net",
    "rcpt_to": ["fwd-7k2p9q@in.mailstream.test"],
    "stream_address": "support@acme.com",
    "subject": "Where is my order?",
    "text": "Order 1234 has not arrived.",
    "raw": "U3ViamVjdDogV2hlcmUgaXMgbXkgb3JkZXI/DQoNCk9yZGVyIDEyMzQgaGFzIG5vdCBhcnJpdmVkLg0K",
    "raw_sha256": "3f2a9c0e5b7d18f4a6c2e9b1d3f5a7c9e0b2d4f6a8c1e3b5d7f9a0c2e4b6d8f1",
    "message_id_header": "<msg_8d1f42@mail.acme.com>",
    "client_ip": "203.0.113.7",
    "helo": "mail.example.net",
    "size": 61,
    "smtp_code": 250,
    "detail": "250 2.0.0 Ok: queued as 4XkP2m0Qz1",
    "relay_queue_id": "4XkP2m0Qz1",
    "recipient": "kana@example.net",
    "trigger_message_id": "msg_77c0e1",
    "rule_id": "rul_3",
    "rule_name": "Out of hours",
    "canned_response_id": "cr_8",
    "forwarding_address": "fwd-7k2p9q@in.mailstream.test",
    "in_reply_to": ["<CAF7k2p9q@mail.example.net>"],
    "requested_by": "agent:key_7",
    "changed_by": "agent:key_7",
    "priority": "normal",
    "references": ["<CAF7k2p9q@mail.example.net>"],
}


def _resolve(schema: dict, schemas: dict[str, dict]) -> dict:
    while "$ref" in schema:
        schema = schemas[schema["$ref"].rsplit("/", 1)[-1]]
    return schema


_CUSTOMER = {"name": "Kana Sato", "address": "kana@example.net"}
_SUPPORT = {"name": "Acme Support", "address": "support@acme.com"}
# Fields whose example depends on the direction of the mail: a customer's mail comes in, an agent's reply goes out.
_EXAMPLE_BY_EVENT: dict[str, dict[str, Any]] = {
    "reply.requested": {
        "from": _SUPPORT,
        "to": [_CUSTOMER],
        "in_reply_to": "<CAF7k2p9q@mail.example.net>",
        "subject": "Re: Where is my order?",
        "text": "It ships today!",
    },
}
_INBOUND_PEOPLE = {"from": _CUSTOMER, "customer": _CUSTOMER, "to": [_SUPPORT]}
_JSON_TYPES = {"string": str, "array": list, "object": dict, "integer": int, "boolean": bool, "number": (int, float)}


def _fits(value: Any, schema: dict, schemas: dict[str, dict]) -> bool:
    """Whether a hinted value has the schema's JSON type (a hint never turns a list into a string)."""
    schema = _resolve(schema, schemas)
    options = schema.get("anyOf") or schema.get("oneOf")
    if options:
        return any(_fits(value, option, schemas) for option in options)
    kind = _JSON_TYPES.get(schema.get("type", ""))
    return kind is None or (isinstance(value, kind) and not (kind is int and isinstance(value, bool)))


def _example(schema: dict, schemas: dict[str, dict], name: str = "", depth: int = 0, hints: dict | None = None) -> Any:
    """A value that fits `schema`: the hinted example for the field's name when its type fits, else the simplest
    instance (an optional field shows only when it has a hint or a plain default, so the example stays readable)."""
    hints = hints if hints is not None else _EXAMPLE_VALUES
    schema = _resolve(schema, schemas)
    if name in hints and _fits(hints[name], schema, schemas):
        return hints[name]
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    if "default" in schema and schema["default"] not in (None, [], {}):
        return schema["default"]
    for key in ("oneOf", "anyOf"):
        if key in schema:
            options = [option for option in schema[key] if option.get("type") != "null"] or schema[key]
            return _example(options[0], schemas, name, depth, hints)
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        properties = schema.get("properties", {})
        wanted = [
            key
            for key, prop in properties.items()
            if key in schema.get("required", ())
            or "const" in _resolve(prop, schemas)  # a union's tag
            or (depth < 2 and key in hints and _fits(hints[key], prop, schemas))
            or (depth < 1 and isinstance(_resolve(prop, schemas).get("default"), (bool, int, str)))
        ]
        return {key: _example(properties[key], schemas, key, depth + 1, hints) for key in wanted}
    if kind == "array":
        count = max(1, schema.get("minItems", 0)) if depth < 3 else schema.get("minItems", 0)
        return [_example(schema.get("items", {}), schemas, name.rstrip("s"), depth + 1, hints) for _ in range(count)]
    if kind == "string":
        fmt = schema.get("format")
        if fmt == "date-time":
            return "2026-03-02T09:15:00Z"
        if fmt == "email":
            return "kana@example.net"
        return (name or "text").replace("_", "-")
    if kind == "integer":
        return max(1, schema.get("minimum", 1))
    if kind == "number":
        return 1.0
    if kind == "boolean":
        return False
    return None


def _event_example(event: type[Event], refs: dict, schemas: dict[str, dict]) -> Any:
    hints = {**_EXAMPLE_VALUES, **_INBOUND_PEOPLE, **_EXAMPLE_BY_EVENT.get(event.event_name, {})}
    return _example(refs[event], schemas, hints=hints)


def _as_asyncapi_schema(node: Any) -> Any:
    """Pydantic writes OpenAPI's discriminator object; an AsyncAPI Schema's `discriminator` is the property name."""
    if isinstance(node, list):
        return [_as_asyncapi_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _as_asyncapi_schema(value) for key, value in node.items()}
    if isinstance(out.get("discriminator"), dict):
        out["discriminator"] = out["discriminator"]["propertyName"]
    return out


def _contract_schemas() -> tuple[dict[type[Event], dict], dict[str, dict]]:
    refs, top = models_json_schema(
        [(event, "serialization") for event in ALL_EVENTS], by_alias=True, ref_template=SCHEMA_REF
    )
    schemas = _as_asyncapi_schema(top.get("$defs", {}))
    return {event: refs[(event, "serialization")] for event in ALL_EVENTS}, schemas


def example_payload(event: type[Event]) -> dict:
    """The example the document shows for `event` (the same function the test feeds back into the contract)."""
    refs, schemas = _contract_schemas()
    return _event_example(event, refs, schemas)


def _message_name(event: type[Event]) -> str:
    return event.__name__


def _channel_id(event: type[Event]) -> str:
    return event.event_name


def _operation_id(*parts: str) -> str:
    return ".".join(parts)


def _queue_binding(name: str, *, replica_local: bool) -> dict:
    return {
        "amqp": {
            "is": "queue",
            "queue": {
                "name": name,
                "durable": not replica_local,
                "exclusive": replica_local,
                "autoDelete": replica_local,
                "vhost": "/",
            },
            "bindingVersion": AMQP_BINDING_VERSION,
        }
    }


def _queue_description(spec: topology.QueueSpec) -> str:
    tiers = ", ".join(f"`{spec.retry_queue(delay)}`" for delay in spec.retry_delays)
    return (
        f"Durable quorum queue bound to {', '.join(f'`{e.event_name}`' for e in spec.events)} on "
        f"`{topology.EVENTS_EXCHANGE}`. A failed message is retried through {tiers} (TTL queues that dead-letter "
        f"back here), at most {spec.max_attempts} attempts; then, or at once for a message that can never succeed, "
        f"it goes to `{spec.dead_letter_queue}` with `x-origin-queue` and `x-error` headers."
    )


def _message_refs(events: tuple[type[Event], ...]) -> dict:
    return {_message_name(e): {"$ref": f"#/components/messages/{_message_name(e)}"} for e in events}


def build() -> dict[str, Any]:
    """The whole AsyncAPI 3.0 document, as plain JSON-ready data (deterministic: same code, same document)."""
    refs, schemas = _contract_schemas()
    messages: dict[str, dict] = {}
    channels: dict[str, dict] = {}
    operations: dict[str, dict] = {}
    for event in ALL_EVENTS:
        name = _message_name(event)
        messages[name] = {
            "name": event.event_name,
            "title": name,
            "summary": " ".join((event.__doc__ or "").split()),
            "contentType": "application/json",
            "headers": {"$ref": "#/components/schemas/AmqpHeaders"},
            "correlationId": {"$ref": "#/components/correlationIds/amqpCorrelationId"},
            "payload": {"$ref": SCHEMA_REF.format(model=name)},
            "examples": [{"name": f"{event.event_name} example", "payload": _event_example(event, refs, schemas)}],
            "bindings": {"amqp": {"messageType": event.event_name, "bindingVersion": AMQP_BINDING_VERSION}},
            "x-schema-version": event.schema_version,
        }
        channel = _channel_id(event)
        channels[channel] = {
            "address": event.event_name,
            "title": f"{event.event_name} on {topology.EVENTS_EXCHANGE}",
            "description": f"Routing key `{event.event_name}` on the topic exchange `{topology.EVENTS_EXCHANGE}`.",
            "messages": _message_refs((event,)),
            "bindings": {
                "amqp": {
                    "is": "routingKey",
                    "exchange": {
                        "name": topology.EVENTS_EXCHANGE,
                        "type": "topic",
                        "durable": True,
                        "autoDelete": False,
                        "vhost": "/",
                    },
                    "bindingVersion": AMQP_BINDING_VERSION,
                }
            },
        }
        for service, when in PUBLISHERS[event.event_name]:
            operations[_operation_id(service, "send", event.event_name)] = {
                "action": "send",
                "channel": {"$ref": f"#/channels/{channel}"},
                "title": f"{service} publishes {event.event_name}",
                "summary": when,
                "description": "Persistent, with publisher confirms.",
                "messages": [{"$ref": f"#/channels/{channel}/messages/{name}"}],
                "bindings": {"amqp": {"deliveryMode": 2, "mandatory": False, "bindingVersion": "0.3.0"}},
            }
    for spec in topology.WORK_QUEUES:
        channels[spec.name] = {
            "address": spec.name,
            "title": f"queue {spec.name}",
            "description": _queue_description(spec),
            "messages": _message_refs(spec.events),
            "bindings": _queue_binding(spec.name, replica_local=False),
        }
        service = spec.name.split(".", 1)[0]
        operations[_operation_id(spec.name, "receive")] = {
            "action": "receive",
            "channel": {"$ref": f"#/channels/{spec.name}"},
            "title": f"{service} consumes {spec.name}",
            "summary": f"Bound to {', '.join(e.event_name for e in spec.events)}; idempotent under redelivery.",
            "messages": [{"$ref": f"#/channels/{spec.name}/messages/{_message_name(e)}"} for e in spec.events],
            "bindings": {"amqp": {"ack": True, "bindingVersion": AMQP_BINDING_VERSION}},
        }
    for service, purpose, events in REPLICA_QUEUES:
        channel = f"{service}.replica"
        channels[channel] = {
            "address": f"{service}.replica.{{replica_id}}",
            "title": f"{service} replica queues",
            "description": f"One exclusive, auto-delete queue per {service} process ({purpose}): it exists only "
            "while its process runs and carries nothing that must survive it.",
            "parameters": {"replica_id": {"description": "The process's replica id"}},
            "messages": _message_refs(events),
            "bindings": _queue_binding(f"{service}.replica.{{replica_id}}", replica_local=True),
        }
        operations[_operation_id(service, "replica", "receive")] = {
            "action": "receive",
            "channel": {"$ref": f"#/channels/{channel}"},
            "title": f"each {service} replica consumes its own queue",
            "summary": purpose,
            "messages": [{"$ref": f"#/channels/{channel}/messages/{_message_name(e)}"} for e in events],
            "bindings": {"amqp": {"ack": True, "bindingVersion": AMQP_BINDING_VERSION}},
        }
    schemas["AmqpHeaders"] = _AMQP_HEADERS
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "id": "urn:mailstream:broker",
        "info": {
            "title": "Mailstream broker contract",
            "version": DOCUMENT_VERSION,
            "description": (
                "Every message the five Mailstream services exchange over RabbitMQ. Generated from "
                "`libs/common/src/mailstream_common/contracts/` and `topology.py` by `scripts/gen_asyncapi.py`; "
                "docs/messages.md describes the same contracts in prose. Every message is JSON on the topic "
                f"exchange `{topology.EVENTS_EXCHANGE}`, published persistent with publisher confirms; the routing "
                "key is the event name. Bytes (`raw`) travel as standard base64."
            ),
            "license": {"name": "Apache-2.0"},
        },
        "defaultContentType": "application/json",
        "servers": {
            "rabbitmq": {
                "host": "{host}",
                "protocol": "amqp",
                "protocolVersion": "0.9.1",
                "description": "Your RabbitMQ (the AMQP_URL every service is given).",
                "variables": {"host": {"default": "localhost:5672", "description": "host:port of the broker"}},
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {
            "schemas": dict(sorted(schemas.items())),
            "messages": messages,
            "correlationIds": {
                "amqpCorrelationId": {
                    "description": "The AMQP correlation_id property: follows one mail or one API request through "
                    "every queue and log line (the payload's `correlation_id` holds the same value).",
                    "location": "$message.payload#/correlation_id",
                }
            },
        },
    }


@cache
def document_json() -> str:
    """The document as committed in docs/asyncapi.json and served by the gateway."""
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"
