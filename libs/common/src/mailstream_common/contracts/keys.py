"""API keys: what every gateway replica must know at once about the keys it caches."""

from typing import ClassVar

from .base import Event


class ApiKeyRevoked(Event):
    """An API key was revoked; every gateway replica forgets it at once (its short cache lifetime is the fallback)."""

    event_name: ClassVar[str] = "api_key.revoked"

    account_id: str
    key_id: str
