"""What a rule refers to in inbox's catalogue (topics, streams, canned responses) and which of those references are
not the account's own.

Save-time checks see the catalogue through automation's own projection, `known_references` (inbox's collections are
never read): only ids, the account, a stream's topic and the `deleted` flag. So a rule can never point at another
account's data, and a typo is a 422 at save time rather than a silent no-op on the first mail.
"""

from collections.abc import Mapping
from typing import Any, Literal

from mailstream_common.contracts import CannedResponseChanged, StreamChanged, TopicChanged
from mailstream_common.contracts.conversations import AutoReplyAction

from .rules import RuleDefinition

Kind = Literal["topic", "stream", "canned_response"]
CatalogueEvent = TopicChanged | StreamChanged | CannedResponseChanged

ENTITIES: list[Kind] = ["topic", "stream", "canned_response"]


def reference_id(kind: Kind, entity_id: str) -> str:
    """The projection document's `_id`: ids of different kinds may collide, so the kind is part of it."""
    return f"{kind}:{entity_id}"


def reference_of(event: CatalogueEvent) -> tuple[str, dict[str, Any]]:
    """The projection document's id and fields for one event."""
    if isinstance(event, TopicChanged):
        kind, entity_id, topic_id = "topic", event.topic_id, None
    elif isinstance(event, StreamChanged):
        kind, entity_id, topic_id = "stream", event.stream_id, event.topic_id
    else:
        kind, entity_id, topic_id = "canned_response", event.canned_response_id, event.topic_id
    fields = {"kind": kind, "account_id": event.account_id, "topic_id": topic_id, "deleted": event.deleted}
    return reference_id(kind, entity_id), fields


def is_live(document: Mapping[str, Any] | None, account_id: str) -> bool:
    """Whether a projection document is a live entity of this account (unknown, deleted or another account's are all
    the same: not there)."""
    return document is not None and not document.get("deleted") and document.get("account_id") == account_id


def referenced_ids(rule: RuleDefinition) -> list[str]:
    """The projection ids of everything the rule names."""
    ids = [] if rule.topic_id is None else [reference_id("topic", rule.topic_id)]
    ids += [reference_id("stream", stream_id) for stream_id in rule.stream_ids]
    ids += [
        reference_id("canned_response", action.canned_response_id)
        for action in rule.actions
        if isinstance(action, AutoReplyAction)
    ]
    return ids


def reference_errors(rule: RuleDefinition, live: Mapping[str, Mapping[str, Any]]) -> list[tuple[list[Any], str]]:
    """(location, message) of every id in the rule that is not in `live` (the account's live entities by projection
    id); empty when all are."""
    errors: list[tuple[list[Any], str]] = []
    if rule.topic_id is not None and reference_id("topic", rule.topic_id) not in live:
        errors.append((["body", "topic_id"], "unknown topic"))
    for index, stream_id in enumerate(rule.stream_ids):
        stream = live.get(reference_id("stream", stream_id))
        if stream is None:
            errors.append((["body", "stream_ids", index], "unknown stream"))
        elif rule.topic_id is not None and stream.get("topic_id") != rule.topic_id:
            errors.append((["body", "stream_ids", index], "stream is not in the rule's topic"))
    for index, action in enumerate(rule.actions):
        if (
            isinstance(action, AutoReplyAction)
            and reference_id("canned_response", action.canned_response_id) not in live
        ):
            errors.append((["body", "actions", index, "canned_response_id"], "unknown canned response"))
    return errors
