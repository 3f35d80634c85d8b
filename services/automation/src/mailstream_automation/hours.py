"""Business-hours windows for `received_at` conditions, in the account's own time zone.

A window is wall-clock local time on the listed days: `{"timezone": "Asia/Tokyo", "days": ["mon", "tue"],
"from": "09:00", "to": "18:00"}` holds from 09:00 inclusive to 18:00 exclusive. When `to` is earlier than
`from` the window runs across midnight and belongs to the day it starts on: `fri 22:00-06:00` covers Friday 22:00
to Saturday 06:00. `to` may be "24:00" (the end of the day). Daylight-saving changes are handled by converting the
instant to local time first: a window always means the local clock, so it is shorter or longer in UTC on the day the
clocks change, and a local time that does not exist that day (a spring-forward gap) never occurs.
"""

import re
from datetime import UTC, datetime
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
DAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_CLOCK = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
END_OF_DAY = "24:00"


def _minutes(clock: str) -> int:
    if clock == END_OF_DAY:
        return 24 * 60
    hours, minutes = clock.split(":")
    return int(hours) * 60 + int(minutes)


def load_zone(name: str) -> ZoneInfo:
    """The IANA zone, or ValueError: also refuses paths and other names zoneinfo would try to open as files."""
    if not name or len(name) > 64 or name.startswith(("/", ".")) or ".." in name or "\\" in name:
        raise ValueError(f"unknown time zone {name!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise ValueError(f"unknown time zone {name!r} (use an IANA name such as 'Europe/Paris')") from exc


class BusinessHours(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    timezone: str = Field(description="IANA time zone name", examples=["Asia/Tokyo"])
    days: list[Day] = Field(min_length=1, max_length=7, description="Days the window starts on")
    from_: str = Field(alias="from", description="Local start, HH:MM (inclusive)", examples=["09:00"])
    to: str = Field(description="Local end, HH:MM (exclusive; '24:00' = midnight)", examples=["18:00"])

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        load_zone(value)
        return value

    @field_validator("days")
    @classmethod
    def _unique_days(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("days must not repeat")
        return sorted(value, key=DAYS.index)

    @field_validator("from_")
    @classmethod
    def _clock_from(cls, value: str) -> str:
        if not _CLOCK.match(value):
            raise ValueError("must be HH:MM between 00:00 and 23:59")
        return value

    @field_validator("to")
    @classmethod
    def _clock_to(cls, value: str) -> str:
        if value != END_OF_DAY and not _CLOCK.match(value):
            raise ValueError("must be HH:MM between 00:00 and 24:00")
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> "BusinessHours":
        if _minutes(self.from_) == _minutes(self.to) % (24 * 60) and self.to != END_OF_DAY:
            raise ValueError("'from' and 'to' are equal: the window would be empty (use 00:00-24:00 for a whole day)")
        return self

    def local_time(self, instant: datetime) -> datetime:
        if instant.tzinfo is None:
            instant = instant.replace(tzinfo=UTC)
        return instant.astimezone(load_zone(self.timezone))

    def contains(self, instant: datetime) -> bool:
        local = self.local_time(instant)
        now = local.hour * 60 + local.minute
        start, end = _minutes(self.from_), _minutes(self.to)
        today = DAYS[local.weekday()]
        yesterday = DAYS[(local.weekday() - 1) % 7]
        if start < end:
            return today in self.days and start <= now < end
        # Across midnight: the evening part belongs to today, the early-morning part to the day before.
        return (today in self.days and now >= start) or (yesterday in self.days and now < end)

    def describe(self) -> str:
        return f"{','.join(self.days)} {self.from_}-{self.to} {self.timezone}"


def describe_local(instant: datetime, hours: BusinessHours) -> str:
    local = hours.local_time(instant)
    return f"{local:%Y-%m-%d %H:%M} {DAYS[local.weekday()]} ({hours.timezone})"


__all__ = ["DAYS", "BusinessHours", "Day", "describe_local", "load_zone"]
