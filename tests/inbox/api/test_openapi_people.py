"""The OpenAPI document describes participants, recipients, warnings and thread reasons, each with an example."""

from mailstream_inbox.api.app import create_app
from mailstream_inbox.settings import InboxSettings


def schemas() -> dict:
    return create_app(InboxSettings(INBOX_ROLE="api")).openapi()["components"]["schemas"]


def example_of(schema: dict) -> dict:
    examples = schema.get("examples") or []
    assert examples, f"{schema.get('title')} has no example"
    return examples


def test_new_fields_are_documented_with_examples():
    found = schemas()
    conversation = found["ConversationPublic"]
    assert "participants" in conversation["properties"]
    assert conversation["properties"]["participants"]["description"]
    assert any(e.get("participants") for e in example_of(conversation))

    message = found["MessagePublic"]
    reasons = {"in_reply_to", "references", "reply_token", "subject_and_sender", "new"}
    reason_schema = message["properties"]["thread_reason"]
    assert all(reason in str(reason_schema) for reason in reasons)
    assert reason_schema["description"]
    assert any("thread_reason" in e for e in example_of(message))
    assert "note" in found["ForwardedPublic"]["properties"]
    assert any(e.get("forwarded", {}).get("note") for e in example_of(message))

    reply = found["ReplyCreate"]
    assert {"to", "cc", "bcc"} <= set(reply["properties"])
    assert any("bcc" in e for e in example_of(reply))
    queued = found["ReplyQueued"]
    assert {"recipients", "warnings"} <= set(queued["properties"])
    assert any(e["warnings"] for e in example_of(queued))
