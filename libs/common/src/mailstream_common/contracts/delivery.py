"""The delivery timeline of an outbound message: one entry per thing that happened to it on its way out.

Inbox keeps the entries on the message (`delivery.timeline`) and carries the ones a change added on
`MessageDeliveryChanged`, so the live stream and webhooks see the same facts as the API.
"""

from datetime import datetime
from typing import Literal

from pydantic import Field

from .base import Contract

TimelineEntryType = Literal["queued", "attempt", "deferred", "sent", "bounced", "failed", "retried"]
FailureReason = Literal["suppressed", "rejected", "expired", "invalid"]


class BounceFacts(Contract):
    """What a bounce report (RFC 3464 DSN, or a best guess from a non-standard one) said."""

    kind: Literal["hard", "soft"] = Field(description="hard: the address will not work; soft: it may later")
    status: str | None = Field(default=None, description="The DSN's enhanced status code, e.g. 5.1.1")
    smtp_code: int | None = Field(default=None, description="The remote server's reply code, e.g. 550")
    diagnostic: str = Field(default="", description="The remote server's text (Diagnostic-Code)")
    recipient: str | None = Field(default=None, description="The recipient the report is about")


class DeliveryTimelineEntry(Contract):
    """One step of an outbound message's delivery."""

    type: TimelineEntryType = Field(
        description="queued (stored, waiting for the sender); attempt (one SMTP transaction with the relay); "
        "deferred (a temporary failure, tried again at next_attempt_at); sent (the relay accepted it); bounced (a "
        "failure report came back later); failed (given up: see reason); retried (re-sent through the API)"
    )
    at: datetime
    attempt: int | None = Field(default=None, description="attempt: its number, counted over every retry")
    smtp_code: int | None = Field(default=None, description="attempt: the relay's reply code (none: unreachable)")
    reply: str = Field(default="", description="attempt: the relay's reply text, or why it could not be reached")
    next_attempt_at: datetime | None = Field(default=None, description="deferred: when the sender tries again")
    relay_queue_id: str | None = Field(default=None, description="sent: the relay's queue id from its 250 reply")
    reason: FailureReason | None = Field(
        default=None,
        description="failed: suppressed (a recipient is on the suppression list), rejected (the relay refused it "
        "for good), expired (temporary failures until the sender gave up), invalid (it could not be built)",
    )
    detail: str = Field(default="", description="A human-readable sentence about the step")
    bounce: BounceFacts | None = Field(default=None, description="bounced: what the report said")
    retry_round: int = Field(default=0, description="0 for the first send, n after the n-th retry")
