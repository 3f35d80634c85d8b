"""Email streams: the forwarding addresses ingest accepts mail for."""

from typing import ClassVar, Literal

from .base import Event


class StreamChanged(Event):
    """A stream was created, changed or deleted; ingest's recipient cache and sender's stream cache follow these."""

    event_name: ClassVar[str] = "stream.changed"

    change: Literal["created", "updated", "deleted"]
    account_id: str
    topic_id: str
    stream_id: str
    address: str
    forwarding_address: str
    allow_agent_send: bool
