"""The suppression API's request and response bodies."""

import re
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from ..repositories.suppressions import Suppression

_ADDRESS = re.compile(r"^[^\s<>@\"(),;:\\]+@[^\s<>@\"(),;:\\]+\.[^\s<>@\"(),;:\\]+$")


class SuppressionCreate(BaseModel):
    address: str = Field(examples=["customer@example.net"])
    reason: str = Field(default="added by an admin", max_length=500)

    @field_validator("address")
    @classmethod
    def _valid_address(cls, value: str) -> str:
        value = value.strip().lower()
        if not _ADDRESS.match(value) or len(value) > 254:
            raise ValueError("not an email address")
        return value


class SuppressionPublic(BaseModel):
    address: str
    reason: str
    source: Literal["bounces", "api"] = Field(description="Suppressed by repeated hard bounces or by an admin")
    hard_bounces: int
    created_at: datetime

    @classmethod
    def of(cls, s: Suppression) -> "SuppressionPublic":
        return cls(
            address=s.address, reason=s.reason, source=s.source, hard_bounces=s.hard_bounces, created_at=s.created_at
        )
