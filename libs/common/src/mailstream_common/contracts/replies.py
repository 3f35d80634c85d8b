"""Outgoing mail: what inbox asks sender to send, and what sender reports back."""

from datetime import datetime
from typing import ClassVar, Literal

from pydantic import Field

from .base import Address, Contract, Event, RawBytes
from .delivery import FailureReason


class EmailTemplate(Contract):
    """The account's (or the stream's) template; each part contains `{{ content }}`."""

    html: str
    text: str


class OutgoingAttachment(Contract):
    """A file to attach to an outgoing mail (added for sender; optional everywhere)."""

    filename: str
    content_type: str = "application/octet-stream"
    content: RawBytes
    content_id: str | None = Field(default=None, description="Set for an inline part referenced from the HTML")


class ReplyRequested(Event):
    """Send this mail. Inbox has already stored the outbound message as 'queued'."""

    event_name: ClassVar[str] = "reply.requested"

    kind: Literal["reply", "auto_reply", "forwarding_test"] = "reply"
    account_id: str
    stream_id: str
    conversation_id: str | None = None
    message_id: str = Field(description="Inbox's id of the outbound message; the idempotency key of the send")
    message_id_header: str = Field(description="Message-ID to put on the mail, '<...>' form, chosen by inbox")
    from_: Address = Field(alias="from")
    to: list[Address]
    cc: list[Address] = Field(default_factory=list)
    bcc: list[Address] = Field(default_factory=list, description="Envelope recipients only: never in a header")
    reply_to: list[Address] = Field(default_factory=list, description="Reply-To header (the conversation's token)")
    subject: str
    in_reply_to: str | None = None
    references: list[str] = Field(default_factory=list)
    text: str
    html: str | None = None
    template: EmailTemplate | None = Field(default=None, description="Applied around the content when present")
    template_context: dict[str, str] = Field(default_factory=dict, description="Extra template variables")
    extra_headers: dict[str, str] = Field(default_factory=dict)
    attachments: list[OutgoingAttachment] = Field(default_factory=list, description="Files to attach")
    requested_by: str = Field(description="'agent:<key id>', 'automation:<rule id>' or 'system'")
    retry_round: int = Field(
        default=0,
        description="0 for the first send; n for the n-th retry of a failed message through the API (the sender "
        "sends the bytes it kept from the first attempt again: same Message-ID)",
    )


DeliveryStatus = Literal["sent", "deferred", "failed", "bounced"]


class DeliveryReported(Event):
    """The outcome of one delivery attempt, or a bounce that came back for a sent message."""

    event_name: ClassVar[str] = "delivery.reported"

    account_id: str | None = Field(default=None, description="None for a bounce, which names only the message")
    message_id: str
    status: DeliveryStatus
    detail: str = ""
    permanent: bool = False
    smtp_code: int | None = None
    relay_queue_id: str | None = None
    recipient: str | None = None
    attempt: int = 1
    raw: RawBytes | None = Field(default=None, description="The exact bytes sent (with DKIM signature), once built")
    failure_reason: FailureReason | None = Field(
        default=None, description="failed: suppressed, rejected (a 5xx), expired (gave up retrying) or invalid"
    )
    next_attempt_at: datetime | None = Field(default=None, description="deferred: when the sender tries again")
    relay_reply: str | None = Field(
        default=None, description="The relay's reply to this attempt ('451 4.3.2 try later', '250 2.0.0 queued as ...')"
    )
    dsn_status: str | None = Field(default=None, description="bounced: the DSN's enhanced status code, e.g. 5.1.1")
    retry_round: int = Field(default=0, description="The `ReplyRequested.retry_round` this attempt belongs to")
