"""Inbound mail: what ingest accepted over SMTP, and what it understood of it."""

from datetime import datetime
from typing import ClassVar, Literal

from pydantic import Field

from .base import Address, Contract, Event, HeaderField, RawBytes


class Envelope(Contract):
    """The SMTP envelope as ingest saw it."""

    mail_from: str = Field(description="MAIL FROM address; empty for the null sender (bounces)")
    rcpt_to: list[str] = Field(description="Every accepted RCPT TO, lower-cased")
    client_ip: str | None = None
    helo: str | None = None
    tls: bool = False


class StreamTarget(Contract):
    """A recipient that is the forwarding address of a live stream."""

    forwarding_address: str
    stream_id: str
    account_id: str
    stream_address: str | None = Field(
        default=None, description="The stream's customer-facing address (support@acme.com), when ingest knew it"
    )


class MailReceived(Event):
    """Ingest accepted a mail: the raw bytes are durable on the broker and SMTP answered 250."""

    event_name: ClassVar[str] = "mail.received"

    mail_id: str = Field(description="Assigned by ingest at DATA time; one per accepted SMTP transaction")
    received_at: datetime
    envelope: Envelope
    targets: list[StreamTarget] = Field(default_factory=list, description="Streams this mail is for")
    bounce_tokens: list[str] = Field(
        default_factory=list, description="VERP tokens of bounce addresses among the recipients"
    )
    raw: RawBytes
    raw_sha256: str
    size: int
    imported: bool = Field(
        default=False, description="History brought in by `mailstream import`: stored quietly, no automation runs"
    )


class AttachmentInfo(Contract):
    part_id: str = Field(description="Path of the MIME leaf part, e.g. '2' or '1.3', to extract it from raw")
    filename: str | None = None
    content_type: str
    size: int
    sha256: str
    content_id: str | None = None
    inline: bool = False


class ForwardInfo(Contract):
    """How the customer was recovered when the mail did not come from them directly."""

    method: Literal["redirect", "forward_inline", "forward_attached"]
    by: Address | None = Field(default=None, description="The mailbox that forwarded or redirected it")
    original_from: Address
    original_date: datetime | None = None
    original_subject: str | None = None
    detected_by: str = Field(description="The rule that recognised it, e.g. 'gmail-inline', 'resent-headers'")
    note: str | None = Field(
        default=None,
        description="forward_attached: the forwarder's own text above the attachment (the mail's text is then the "
        "attached customer message's)",
    )


class AuthenticationResult(Contract):
    """RFC 8601 summary of the inbound checks; 'none' where a check did not apply."""

    spf: str = "none"
    dkim: str = "none"
    dmarc: str = "none"
    header: str = Field(default="", description="The Authentication-Results header value we would add")


class ProviderConfirmation(Contract):
    """A mail provider's 'confirm this forwarding address' mail, recognised so the admin can finish set-up."""

    provider: str
    code: str | None = None
    link: str | None = None
    requested_by: str | None = None


class MailAnalysed(Event):
    """Ingest parsed the mail, recovered the customer, and checked SPF/DKIM/DMARC. Inbox stores it per target."""

    event_name: ClassVar[str] = "mail.analysed"

    mail_id: str
    received_at: datetime
    envelope: Envelope
    targets: list[StreamTarget]
    raw: RawBytes
    raw_sha256: str
    message_id_header: str | None = None
    in_reply_to: list[str] = Field(default_factory=list)
    references: list[str] = Field(default_factory=list)
    subject: str = ""
    from_: Address | None = Field(default=None, alias="from")
    to: list[Address] = Field(default_factory=list)
    cc: list[Address] = Field(default_factory=list)
    reply_to: list[Address] = Field(default_factory=list)
    date: datetime | None = None
    headers: list[HeaderField] = Field(default_factory=list)
    text: str = ""
    html: str | None = Field(default=None, description="As sent: inbox sanitises before storing")
    attachments: list[AttachmentInfo] = Field(default_factory=list)
    customer: Address | None = Field(default=None, description="Whom the conversation belongs to and replies go to")
    forwarded: ForwardInfo | None = None
    authentication: AuthenticationResult = Field(default_factory=AuthenticationResult)
    provider_confirmation: ProviderConfirmation | None = None
    forwarding_test_token: str | None = Field(
        default=None, description="Set when this is Mailstream's own forwarding-check mail coming back"
    )
    parse_warnings: list[str] = Field(default_factory=list)
    imported: bool = Field(default=False, description="Copied from `MailReceived.imported`")
