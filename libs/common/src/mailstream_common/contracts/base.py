"""The base every broker message derives from, and the small value types the contracts share."""

import base64
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar
from uuid import uuid4

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer


def utcnow() -> datetime:
    return datetime.now(UTC)


def _decode_base64(value: Any) -> Any:
    if isinstance(value, str):
        return base64.b64decode(value, validate=True)
    return value


RawBytes = Annotated[
    bytes,
    BeforeValidator(_decode_base64),
    PlainSerializer(lambda b: base64.b64encode(b).decode("ascii"), return_type=str, when_used="json"),
]
"""Bytes that travel as standard base64 in JSON (mail is 8-bit and may not be valid UTF-8)."""


class Contract(BaseModel):
    """A plain value inside a message: unknown fields are ignored so that producers may add optional fields
    before every consumer knows them."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class Event(Contract):
    """One message on the broker: an event (past tense: something happened) or a command (something is asked).

    `event_name` is also the routing key; `schema_version` changes only on an incompatible change, and a consumer
    refuses (dead-letters) a version it does not know rather than guess.
    """

    event_name: ClassVar[str]
    schema_version: ClassVar[int] = 1

    event_id: str = Field(default_factory=lambda: uuid4().hex, description="Unique per publication")
    occurred_at: datetime = Field(default_factory=utcnow)
    correlation_id: str | None = Field(
        default=None, description="Follows one mail or one API request through every queue and log line"
    )


class Address(Contract):
    """A mailbox: display name (decoded, may be empty) and address."""

    name: str = ""
    address: str


class HeaderField(Contract):
    """One header line, in order; names may repeat and may contain dots, so headers are never a mapping."""

    name: str
    value: str
