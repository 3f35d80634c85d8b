"""Message contracts: one versioned model per event or command, one module per flow.

`ALL_EVENTS` is the single list the topology and docs/messages.md are checked against.
"""

from .base import Address, Contract, Event, HeaderField, RawBytes, utcnow
from .conversations import (
    ConversationActionsRequested,
    ConversationChanged,
    MessageDeliveryChanged,
    MessageStored,
    RuleAction,
)
from .data_protection import ERASING_SERVICES, DataErasurePartDone, DataErasureRequested, DataExportRequested
from .domains import DomainChanged
from .keys import ApiKeyRevoked
from .mail import MailAnalysed, MailReceived
from .replies import DeliveryReported, EmailTemplate, ReplyRequested
from .streams import CannedResponseChanged, ProjectionResyncRequested, StreamChanged, TopicChanged
from .timers import ConversationTimelineRecorded, ScheduledReplyDue, SnoozeDue
from .webhooks import WebhookAttemptDue, WebhookSubscriptionDisabled

ALL_EVENTS: tuple[type[Event], ...] = (
    MailReceived,
    MailAnalysed,
    MessageStored,
    MessageDeliveryChanged,
    ConversationChanged,
    ConversationActionsRequested,
    ReplyRequested,
    DeliveryReported,
    StreamChanged,
    TopicChanged,
    CannedResponseChanged,
    ProjectionResyncRequested,
    DomainChanged,
    ApiKeyRevoked,
    SnoozeDue,
    ScheduledReplyDue,
    ConversationTimelineRecorded,
    WebhookAttemptDue,
    WebhookSubscriptionDisabled,
    DataErasureRequested,
    DataErasurePartDone,
    DataExportRequested,
)

__all__ = [
    "ALL_EVENTS",
    "ERASING_SERVICES",
    "Address",
    "ApiKeyRevoked",
    "CannedResponseChanged",
    "Contract",
    "ConversationActionsRequested",
    "ConversationChanged",
    "ConversationTimelineRecorded",
    "DataErasurePartDone",
    "DataErasureRequested",
    "DataExportRequested",
    "DeliveryReported",
    "DomainChanged",
    "EmailTemplate",
    "Event",
    "HeaderField",
    "MailAnalysed",
    "MailReceived",
    "MessageDeliveryChanged",
    "MessageStored",
    "ProjectionResyncRequested",
    "RawBytes",
    "ReplyRequested",
    "RuleAction",
    "ScheduledReplyDue",
    "SnoozeDue",
    "StreamChanged",
    "TopicChanged",
    "WebhookAttemptDue",
    "WebhookSubscriptionDisabled",
    "utcnow",
]
