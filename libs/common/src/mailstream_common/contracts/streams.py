"""Inbox's catalogue as other services see it: streams, topics and canned responses, each a `*.changed` event that
carries the whole state a consumer needs, and the command that asks inbox to republish all of them.

Each `*.changed` event carries `version`, the document's revision in inbox (incremented atomically by every write
that changes what the event carries). A projection applies an event only if its version is newer than the one it
holds, so a redelivered, duplicated or out-of-order event never takes it back (see `mailstream_common.projection`).
`change` says why the event was published; consumers act on the state (`deleted` included), not on `change`.
"snapshot" is a republication of the current state, in answer to `projection.resync_requested` or by the relay that
publishes changes whose first publication was not confirmed.
"""

from typing import ClassVar, Literal

from pydantic import Field

from .base import Event

Change = Literal["created", "updated", "deleted", "snapshot"]
CatalogueEntity = Literal["stream", "topic", "canned_response"]


class StreamChanged(Event):
    """A stream was created, changed or deleted; ingest's `stream_routes` and sender's `stream_settings` projections
    (and their replica caches) and automation's `known_references` follow these."""

    event_name: ClassVar[str] = "stream.changed"

    change: Change
    version: int = Field(ge=1, description="The stream's revision in inbox; newer wins")
    account_id: str
    topic_id: str
    stream_id: str
    address: str
    display_name: str = ""
    forwarding_address: str
    allow_agent_send: bool
    status: str = "awaiting_mail"
    deleted: bool = False


class TopicChanged(Event):
    """A topic was created, renamed or deleted; automation's `known_references` follows these."""

    event_name: ClassVar[str] = "topic.changed"

    change: Change
    version: int = Field(ge=1, description="The topic's revision in inbox; newer wins")
    account_id: str
    topic_id: str
    name: str
    deleted: bool = False


class CannedResponseChanged(Event):
    """A canned response was created, changed or deleted; automation's `known_references` follows these (it only
    checks that an auto-reply names a live canned response of the account, so the text does not travel)."""

    event_name: ClassVar[str] = "canned_response.changed"

    change: Change
    version: int = Field(ge=1, description="The canned response's revision in inbox; newer wins")
    account_id: str
    canned_response_id: str
    topic_id: str | None = None
    title: str = ""
    deleted: bool = False


class ProjectionResyncRequested(Event):
    """A command to inbox: republish the current state of every entity of these kinds (all accounts, deleted ones
    included) as `*.changed` events with change "snapshot". Sent by a service whose projection is empty at start,
    or by an operator (`mailstream projections resync`); versions make the duplicates harmless to everyone."""

    event_name: ClassVar[str] = "projection.resync_requested"

    entities: list[CatalogueEntity] = Field(min_length=1)
    requested_by: str = Field(description="The service (or operator) that asked, for the logs")
