"""The record of one rule evaluated on one message: what it decided, why, and what it asked inbox to do."""

from datetime import datetime, timedelta
from typing import Any
from uuid import UUID, uuid5

from mailstream_common.contracts import MessageStored

from .evaluation import RuleOutcome
from .rules import StoredRule

_RUN_NAMESPACE = UUID("5f0c8f8e-3b1d-4d8a-9d53-7a3c2f6e1b40")


def run_id_for(rule_id: str, message_id: str) -> str:
    """The run's `_id`, derived from its natural key (rule, message): the unique `_id` makes a run's insert
    idempotent without a second unique index."""
    return uuid5(_RUN_NAMESPACE, f"{rule_id}:{message_id}").hex


def build_run(
    *,
    event: MessageStored,
    rule: StoredRule,
    outcome: RuleOutcome,
    actions: list[Any],
    skipped_actions: list[dict[str, str]],
    customer: str,
    at: datetime,
    retention: timedelta,
) -> dict[str, Any]:
    """A run document; `(rule_id, message_id)` is its unique key, `published` turns true after the broker confirm,
    and a TTL index deletes it at `expires_at`, `retention` after it was decided."""
    return {
        "_id": run_id_for(rule.id, event.message_id),
        "rule_id": rule.id,
        "rule_name": rule.name,
        "account_id": event.account_id,
        "message_id": event.message_id,
        "conversation_id": event.conversation_id,
        "stream_id": event.stream_id,
        "topic_id": event.topic_id,
        "customer": customer,
        "fired": outcome.fired,
        "match": rule.match,
        "matched_conditions": outcome.matched_conditions(),
        "actions": [a.model_dump(mode="json") for a in actions] if outcome.fired else [],
        "skipped_actions": skipped_actions if outcome.fired else [],
        "published": False,
        "published_at": None,
        "received_at": event.received_at,
        "at": at,
        "expires_at": at + retention,
        "correlation_id": event.correlation_id,
    }


def needs_publishing(run: dict[str, Any]) -> bool:
    return bool(run.get("fired") and run.get("actions") and not run.get("published"))
