"""Data protection: erasing what the services keep about one person (or one old conversation), everywhere.

Inbox tracks each request (`data_requests`, `POST /v1/data-requests`, the retention job) and publishes one
`DataErasureRequested`; every service consumes it from a durable queue of its own, erases what it owns and answers
with one `DataErasurePartDone`. Erasing is re-runnable, so a redelivery (or a second identical request) just finds
less to remove; a part reported twice is recorded once.
"""

from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import Field

from .base import Event

#: The services that take part in every erasure; a request is done when each of them has reported.
ERASING_SERVICES: tuple[str, ...] = ("ingest", "inbox", "automation", "sender", "domains")


class DataErasureRequested(Event):
    """Erase, in every service, what names `address`, or what belongs to the listed conversations and messages.

    `message_ids` and `conversation_ids` are what inbox found when the request was made (so that services keyed by
    message id, such as sender and automation, need not know who was in it); `address` is None for a retention
    erasure of whole conversations. The address travels only in this message: no service logs it."""

    event_name: ClassVar[str] = "data_request.erase_requested"

    request_id: str
    account_id: str
    reason: Literal["request", "retention"] = "request"
    address: str | None = Field(default=None, description="Lower-case address to erase; None: whole conversations")
    conversation_ids: list[str] = Field(default_factory=list, description="Conversations inbox found naming it")
    message_ids: list[str] = Field(default_factory=list, description="Messages (inbound and outbound) to erase")
    older_than: datetime | None = Field(
        default=None, description="Retention: erase a conversation only if it has had no message since"
    )
    keep_suppression: bool = Field(
        default=False, description="Sender keeps a suppressed address as a keyed hash instead of deleting it"
    )


class DataExportRequested(Event):
    """Collect, in every service, the records that name `address` (GDPR Art. 20): each answers with them in its
    `DataErasurePartDone.records`, and inbox puts them with the person's mail into one archive."""

    event_name: ClassVar[str] = "data_request.export_requested"

    request_id: str
    account_id: str
    address: str = Field(description="Lower-case address whose records are wanted")
    conversation_ids: list[str] = Field(default_factory=list, description="Conversations inbox found naming it")
    message_ids: list[str] = Field(default_factory=list, description="Messages (inbound and outbound) naming it")


class DataErasurePartDone(Event):
    """One service finished its part of a data request (an erasure or an export); `counts` says how many of what
    it removed (or found), `records` what an export found, by kind."""

    event_name: ClassVar[str] = "data_request.part_done"

    request_id: str
    account_id: str
    service: Literal["ingest", "inbox", "automation", "sender", "domains"]
    counts: dict[str, int] = Field(default_factory=dict, description="Documents removed or changed, by kind")
    records: dict[str, list[dict[str, Any]]] = Field(
        default_factory=dict, description="Export only: the service's records that name the person, by kind"
    )
