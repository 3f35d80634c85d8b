"""A rule as the API accepts it and as it is stored: validated once, so evaluation can trust it."""

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from mailstream_common.contracts import RuleAction
from mailstream_common.contracts.conversations import AddTagsAction, AutoReplyAction, RemoveTagsAction

from .conditions import Condition

MAX_CONDITIONS = 50
MAX_ACTIONS = 20
MAX_TAG_LENGTH = 100


class RuleDefinition(BaseModel):
    """What a rule says, without identity or order."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200, examples=["Out-of-hours auto-reply"])
    enabled: bool = True
    topic_id: str | None = Field(default=None, description="Only mail of this topic (null: every topic)")
    stream_ids: list[str] = Field(
        default_factory=list, max_length=100, description="Only mail of these streams (empty: every stream)"
    )
    match: Literal["all", "any"] = Field(default="all", description="Fire when all conditions hold, or any one")
    conditions: list[Condition] = Field(
        default_factory=list, max_length=MAX_CONDITIONS, description="No conditions: the rule fires on every mail"
    )
    actions: list[RuleAction] = Field(min_length=1, max_length=MAX_ACTIONS)
    stop_processing: bool = Field(default=False, description="When this rule fires, later rules are not evaluated")

    @field_validator("name")
    @classmethod
    def _name_not_blank(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("must not be blank")
        return value

    @field_validator("stream_ids")
    @classmethod
    def _unique_streams(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))

    @field_validator("actions")
    @classmethod
    def _sound_actions(cls, actions: list[Any]) -> list[Any]:
        if sum(isinstance(a, AutoReplyAction) for a in actions) > 1:
            raise ValueError("at most one auto_reply action per rule")
        for index, action in enumerate(actions):
            if isinstance(action, AddTagsAction | RemoveTagsAction):
                tags = [tag.strip() for tag in action.tags]
                if any(not tag or len(tag) > MAX_TAG_LENGTH for tag in tags):
                    raise ValueError(f"actions[{index}].tags: each tag must be 1 to {MAX_TAG_LENGTH} characters")
                action.tags = list(dict.fromkeys(tags))
            if isinstance(action, AutoReplyAction) and not action.canned_response_id.strip():
                raise ValueError(f"actions[{index}].canned_response_id: must not be empty")
        return actions

    def to_document(self) -> dict[str, Any]:
        """Plain data for MongoDB (no dots or '$' in field names: condition fields are values, not keys)."""
        return {
            "name": self.name,
            "enabled": self.enabled,
            "topic_id": self.topic_id,
            "stream_ids": self.stream_ids,
            "match": self.match,
            "conditions": [c.to_document() for c in self.conditions],
            "actions": [a.model_dump(mode="json") for a in self.actions],
            "stop_processing": self.stop_processing,
        }

    def has_auto_reply(self) -> bool:
        return any(isinstance(a, AutoReplyAction) for a in self.actions)


class StoredRule(RuleDefinition):
    """A saved rule: its identity, tenant and place in the account's order."""

    id: str
    account_id: str
    position: int
    created_at: datetime
    updated_at: datetime
    last_fired_at: datetime | None = None
    fired_count: int = 0

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> "StoredRule":
        fields = {k: v for k, v in doc.items() if k in cls.model_fields}
        return cls.model_validate({**fields, "id": doc["_id"]})
