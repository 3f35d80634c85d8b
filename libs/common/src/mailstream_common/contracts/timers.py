"""Time in conversations: inbox's own wake-up calls (delivered later through the delay ladder, `delays.py`) and
what it announces about a conversation's timeline (merges, splits, snoozes, scheduled replies)."""

from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import Field

from .base import Event


class SnoozeDue(Event):
    """A snoozed conversation's time has come: reopen it, unless the snooze was cancelled or replaced meanwhile."""

    event_name: ClassVar[str] = "conversation.snooze_due"

    account_id: str
    conversation_id: str
    snooze_token: str = Field(description="The snooze this wake-up belongs to; a later snooze or a cancel changes it")
    due_at: datetime = Field(description="When to reopen; arriving earlier, the message is delayed again")


class ScheduledReplyDue(Event):
    """A held reply's `send_at` has come: send it, unless it was cancelled (or already left)."""

    event_name: ClassVar[str] = "reply.scheduled_due"

    account_id: str
    conversation_id: str
    message_id: str
    schedule_token: str = Field(description="The schedule this wake-up belongs to")
    due_at: datetime = Field(description="The reply's `send_at`; arriving earlier, the message is delayed again")


TimelineKind = Literal[
    "merged",
    "unmerged",
    "split",
    "moved",
    "moved_back",
    "snoozed",
    "unsnoozed",
    "woke",
    "reply_scheduled",
    "scheduled_reply_cancelled",
    "scheduled_reply_sent",
]


class ConversationTimelineRecorded(Event):
    """Something happened to a conversation that its timeline records (live clients refresh the conversation)."""

    event_name: ClassVar[str] = "conversation.timeline_recorded"

    account_id: str
    conversation_id: str
    entry_id: str
    kind: TimelineKind
    at: datetime
    actor: str = Field(description="'agent:<key id>', 'customer' or 'system'")
    details: dict[str, Any] = Field(default_factory=dict, description="Kind-specific: ids of the other side, times")
