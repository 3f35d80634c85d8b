"""What inbox tells the rest once a message is stored or a conversation changes, and what it is asked to do."""

from datetime import datetime
from typing import Annotated, ClassVar, Literal

from pydantic import Field

from .base import Address, Contract, Event, HeaderField
from .delivery import DeliveryTimelineEntry
from .mail import AuthenticationResult

ConversationStatus = Literal["open", "pending", "closed", "snoozed"]
SettableStatus = Literal["open", "pending", "closed"]  # what a rule may set; snoozing needs a time
Priority = Literal["low", "normal", "high", "urgent"]


class MessageStored(Event):
    """A message was stored in a conversation for the first time (never for a redelivered duplicate)."""

    event_name: ClassVar[str] = "message.stored"

    account_id: str
    topic_id: str
    stream_id: str
    conversation_id: str
    message_id: str
    direction: Literal["inbound", "outbound"]
    is_first_message: bool
    from_: Address | None = Field(default=None, alias="from")
    to: list[Address] = Field(default_factory=list)
    cc: list[Address] = Field(default_factory=list)
    subject: str = ""
    text: str = Field(default="", description="Plain-text body, possibly truncated for the broker")
    headers: list[HeaderField] = Field(default_factory=list)
    has_attachment: bool = False
    authentication: AuthenticationResult = Field(default_factory=AuthenticationResult)
    received_at: datetime
    thread_reason: Literal["in_reply_to", "references", "reply_token", "subject_and_sender", "new"] | None = Field(
        default=None, description="Inbound only: why the message joined its conversation"
    )
    imported: bool = Field(default=False, description="History import: no rule runs, live clients may coalesce it")


class ConversationChanged(Event):
    """A conversation's status, tags, assignee, priority or participants changed (by an agent, by automation, or
    by a mail that copied someone new: 'system')."""

    event_name: ClassVar[str] = "conversation.changed"

    account_id: str
    conversation_id: str
    status: ConversationStatus
    tags: list[str] = Field(default_factory=list)
    assignee: str | None = None
    priority: Priority = "normal"
    changed_by: str = Field(description="'agent:<key id>', 'automation:<rule id>' or 'system'")
    participants: list[str] | None = Field(
        default=None, description="Lower-case addresses of the customer and the people copied (None: not known)"
    )


class MessageDeliveryChanged(Event):
    """An outbound message's delivery changed (inbox applied a delivery report: a new status, or a deferral with
    its next attempt, or a retry through the API); drives live updates and webhooks."""

    event_name: ClassVar[str] = "message.delivery_changed"

    account_id: str
    conversation_id: str | None
    message_id: str
    status: Literal["queued", "sent", "failed"]
    detail: str = ""
    timeline: list[DeliveryTimelineEntry] = Field(
        default_factory=list,
        description="The delivery timeline entries this change added (an attempt and its deferral, the sent with "
        "the relay's queue id, a bounce, a failure with its reason, a retry); the whole timeline is on the message",
    )


class AutoReplyAction(Contract):
    type: Literal["auto_reply"] = "auto_reply"
    canned_response_id: str
    apply_template: bool = True


class AddTagsAction(Contract):
    type: Literal["add_tags"] = "add_tags"
    tags: list[str] = Field(min_length=1)


class RemoveTagsAction(Contract):
    type: Literal["remove_tags"] = "remove_tags"
    tags: list[str] = Field(min_length=1)


class AssignAction(Contract):
    type: Literal["assign"] = "assign"
    assignee: str | None


class SetStatusAction(Contract):
    type: Literal["set_status"] = "set_status"
    status: SettableStatus


class SetPriorityAction(Contract):
    type: Literal["set_priority"] = "set_priority"
    priority: Priority


RuleAction = Annotated[
    AutoReplyAction | AddTagsAction | RemoveTagsAction | AssignAction | SetStatusAction | SetPriorityAction,
    Field(discriminator="type"),
]
"""An automation action: both the rule API's schema and the command's payload."""


class ConversationActionsRequested(Event):
    """Automation asks inbox (the only writer of conversations) to apply a rule's actions."""

    event_name: ClassVar[str] = "conversation.actions_requested"

    account_id: str
    conversation_id: str
    trigger_message_id: str
    rule_id: str
    rule_name: str
    actions: list[RuleAction]
