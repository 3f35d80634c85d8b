"""Sending domains: their verification status decides whether sender signs."""

from typing import ClassVar, Literal

from .base import Event


class DomainChanged(Event):
    """A domain was added, verified, failed verification, rotated its key or was removed."""

    event_name: ClassVar[str] = "domain.changed"

    change: Literal["created", "status_changed", "key_rotated", "deleted"]
    account_id: str
    domain_id: str
    name: str
    status: str
    signing_selector: str | None = None
