"""Outgoing webhooks: the dispatcher's own wake-up call for one delivery attempt, and the announcement that a
subscription failing for days was switched off (carried to the account's live stream)."""

from datetime import datetime
from typing import ClassVar

from pydantic import Field

from .base import Event


class WebhookAttemptDue(Event):
    """A command to the webhook dispatcher: attempt this delivery now (or, arriving early, wait down the delay
    ladder again). `sequence` names the scheduled attempt; a command whose sequence the delivery has moved past is
    stale and dropped, so duplicates and replays never send twice in one step."""

    event_name: ClassVar[str] = "webhook.attempt_due"

    delivery_id: str = Field(description="The delivery's id, also its `webhook-id` header (`msg_...`)")
    sequence: int = Field(ge=1, description="Which scheduled attempt of the delivery this is")
    due_at: datetime = Field(description="When the attempt is due; earlier, the command is delayed again")


class WebhookSubscriptionDisabled(Event):
    """A webhook subscription failed every delivery for longer than the operator allows and was disabled; the
    account's live stream shows it (SSE `webhook.subscription_disabled`)."""

    event_name: ClassVar[str] = "webhook.subscription_disabled"

    account_id: str
    subscription_id: str
    url: str = Field(description="The endpoint, without query string (it may hold a token)")
    failing_since: datetime
    reason: str = Field(description="The last attempt's error, e.g. 'HTTP 500' or 'timeout'")
