"""Request and response bodies of the rule API (names after the FastAPI template: XCreate, XUpdate, XPublic)."""

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from mailstream_common.contracts import RuleAction

from ..conditions import Condition
from ..facts import Facts, build_facts
from ..rules import MAX_ACTIONS, MAX_CONDITIONS, RuleDefinition
from . import examples

PositionField = Field(
    default=None,
    ge=0,
    description="0-based place in the account's evaluation order; others move down. Omitted on create: last.",
)


class RuleCreate(RuleDefinition):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [examples.OUT_OF_HOURS_AUTO_REPLY]})

    position: int | None = PositionField


class RuleUpdate(BaseModel):
    """Only the fields given change; `conditions` and `actions` are replaced as a whole."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"enabled": False}, {"position": 0}]})

    # Defaults are not validated, so an omitted field stays None while an explicit null is refused (422).
    name: str = Field(default=None, min_length=1, max_length=200)  # type: ignore[assignment]
    enabled: bool = Field(default=None)  # type: ignore[assignment]
    topic_id: str | None = None
    stream_ids: list[str] = Field(default=None, max_length=100)  # type: ignore[assignment]
    match: Literal["all", "any"] = Field(default=None)  # type: ignore[assignment]
    conditions: list[Condition] = Field(default=None, max_length=MAX_CONDITIONS)  # type: ignore[assignment]
    actions: list[RuleAction] = Field(default=None, min_length=1, max_length=MAX_ACTIONS)  # type: ignore[assignment]
    stop_processing: bool = Field(default=None)  # type: ignore[assignment]
    position: int | None = PositionField

    def merged_into(self, current: RuleDefinition) -> dict[str, Any]:
        """The whole rule after this change, as plain data to validate again."""
        changes = self.model_dump(mode="json", by_alias=True, exclude_unset=True, exclude={"position"})
        return {**current.to_document(), **changes}


class RulePublic(RuleDefinition):
    model_config = ConfigDict(extra="ignore", json_schema_extra={"examples": [examples.URGENT_REFUNDS]})

    id: str
    position: int = Field(description="0-based place in the evaluation order")
    created_at: datetime
    updated_at: datetime
    last_fired_at: datetime | None = Field(default=None, description="When the rule last fired on a message")
    fired_count: int = Field(default=0, description="How many messages the rule has fired on")


class ConditionVerdict(BaseModel):
    index: int = Field(description="Position of the condition in the rule")
    field: str
    operator: str
    matched: bool
    why: str = Field(examples=['subject "Refund for order 12345" contains "refund"'])
    error: str | None = Field(default=None, description="e.g. 'regex_timeout' when the pattern ran out of time")


class SkippedAction(BaseModel):
    type: str
    reason: str = Field(
        description="Why it was held back: auto_submitted, precedence, mailing_list, autoresponder, suppressed, "
        "null_sender, daemon_sender, no_reply_sender, rate_limited (followed by detail)",
        examples=["auto_submitted: Auto-Submitted: auto-replied"],
    )


class RunPublic(BaseModel):
    """One evaluation of the rule on one inbound message."""

    id: str
    rule_id: str
    rule_name: str = ""
    message_id: str
    conversation_id: str
    stream_id: str | None = None
    customer: str = Field(default="", description="The sender's address")
    fired: bool
    match: Literal["all", "any"] = "all"
    matched_conditions: list[ConditionVerdict] = Field(description="Every condition with its verdict and reason")
    actions: list[dict[str, Any]] = Field(description="The actions requested from the inbox")
    skipped_actions: list[SkippedAction] = Field(default_factory=list)
    published: bool = Field(description="The inbox was asked (the broker confirmed the command)")
    received_at: datetime | None = None
    at: datetime

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> "RunPublic":
        return cls.model_validate({**doc, "id": doc["_id"]})


class HeaderSample(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    value: str = Field(max_length=10_000)


class AuthenticationSample(BaseModel):
    spf: str = "none"
    dkim: str = "none"
    dmarc: str = "none"


class SampleMessage(BaseModel):
    """The message facts a dry run evaluates against (what a stored inbound message would give)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_: str | None = Field(default=None, alias="from", max_length=320, description="Sender address")
    from_name: str = ""
    to: list[str] = Field(default_factory=list, max_length=100)
    cc: list[str] = Field(default_factory=list, max_length=100)
    subject: str = Field(default="", max_length=10_000)
    body: str = Field(default="", max_length=200_000)
    headers: list[HeaderSample] = Field(default_factory=list, max_length=500)
    has_attachment: bool = False
    is_first_message: bool = True
    authentication: AuthenticationSample = Field(default_factory=AuthenticationSample)
    received_at: datetime | None = Field(default=None, description="Default: now")

    def to_facts(self) -> Facts:
        return build_facts(
            from_address=self.from_,
            from_name=self.from_name,
            to=self.to,
            cc=self.cc,
            subject=self.subject,
            body=self.body,
            headers=[(h.name, h.value) for h in self.headers],
            has_attachment=self.has_attachment,
            is_first_message=self.is_first_message,
            authentication=self.authentication.model_dump(),
            received_at=self.received_at,
        )


class RuleTest(BaseModel):
    """Evaluate a draft rule (`rule`) or a saved one (`rule_id`) against a sample message. Nothing is recorded."""

    model_config = ConfigDict(extra="forbid")

    rule: RuleDefinition | None = None
    rule_id: str | None = None
    message: SampleMessage

    @model_validator(mode="after")
    def _one_rule(self) -> "RuleTest":
        if (self.rule is None) == (self.rule_id is None):
            raise ValueError("give exactly one of 'rule' or 'rule_id'")
        return self


class RuleTestResult(BaseModel):
    fired: bool
    matched_conditions: list[ConditionVerdict]
    actions: list[dict[str, Any]] = Field(description="What would be requested from the inbox")
    skipped_actions: list[SkippedAction] = Field(
        description="Auto-replies loop protection would hold back (the per-customer rate limit is not simulated)"
    )
