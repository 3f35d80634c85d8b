"""The pure rules of reorganising conversations and of time in them: which merges and moves are allowed, what a
move is called on the timeline, where a merged conversation's mail goes, and the states of snoozes and scheduled
replies. No I/O: the use cases (`use_cases/conversation_moves.py`, `snooze.py`, `scheduled_send.py`) load the
documents, ask here, and write.
"""

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

MAX_MERGE_HOPS = 16  # a chain of merges longer than this is a bug (merges refuse merged targets); stop following
MAX_SNOOZE = timedelta(days=366)
MAX_SCHEDULE = timedelta(days=366)


@dataclass(frozen=True)
class Refusal:
    """Why a reorganisation is refused: `status` 404 (not this account's) or 409 (not possible), and `reason`."""

    status: int
    reason: str


def _same_place(source: Mapping[str, Any], target: Mapping[str, Any] | None) -> Refusal | None:
    if target is None or target.get("account_id") != source.get("account_id"):
        return Refusal(404, "conversation not found")
    if target["_id"] == source["_id"]:
        return Refusal(409, "the message is already in this conversation")
    if target.get("stream_id") != source.get("stream_id"):
        return Refusal(409, "only conversations of the same stream can be merged or exchange messages")
    return None


def merge_refusal(source: Mapping[str, Any], target: Mapping[str, Any] | None) -> Refusal | None:
    """Merging `source` into `target`: same account (else 404), same stream, neither merged elsewhere."""
    refused = _same_place(source, target)
    if refused is not None:
        if refused.status == 409 and target is not None and target["_id"] == source["_id"]:
            return Refusal(409, "a conversation cannot be merged into itself")
        return refused
    assert target is not None
    if target.get("merged_into"):
        return Refusal(409, f"the target was itself merged into {target['merged_into']}: merge into that one")
    if source.get("merged_into") not in (None, target["_id"]):
        return Refusal(409, f"this conversation was merged into {source['merged_into']} already")
    return None


def move_refusal(source: Mapping[str, Any], target: Mapping[str, Any] | None) -> Refusal | None:
    """Moving a message of `source` into `target`: same account (else 404), same stream, target not merged away."""
    refused = _same_place(source, target)
    if refused is not None:
        return refused
    assert target is not None
    if target.get("merged_into"):
        return Refusal(409, f"that conversation was merged into {target['merged_into']}: unmerge it first")
    return None


def move_kind(message: Mapping[str, Any], target_id: str) -> str:
    """`moved_back` when the message returns to the conversation it last left (the undo of a move), else `moved`."""
    return "moved_back" if message.get("previous_conversation_id") == target_id else "moved"


def messages_to_unmerge(messages: list[Mapping[str, Any]], merged_id: str) -> list[str]:
    """The ids of the target's messages that the merge brought from `merged_id` (mail that arrived since stays)."""
    return [m["_id"] for m in messages if m.get("previous_conversation_id") == merged_id]


def follow_merges(conversation_id: str, merged_into: Mapping[str, str | None]) -> str:
    """Where mail for `conversation_id` goes: along `merged_into` links to the end (bounded, cycle-safe)."""
    seen = {conversation_id}
    current = conversation_id
    for _ in range(MAX_MERGE_HOPS):
        following = merged_into.get(current)
        if not following or following in seen:
            return current
        seen.add(following)
        current = following
    return current


# --- snooze ---


def snooze_refusal(conversation: Mapping[str, Any], until: datetime, now: datetime) -> Refusal | None:
    if conversation.get("merged_into"):
        return Refusal(409, "this conversation was merged: snooze the one it was merged into")
    if until <= now:
        return Refusal(422, "`until` must be in the future")
    if until - now > MAX_SNOOZE:
        return Refusal(422, "`until` must be within a year")
    return None


def new_snooze(until: datetime, now: datetime, previous_status: str) -> dict[str, Any]:
    """The `snooze` of a conversation: its time, its token (what a wake-up must name) and what it was before."""
    return {"until": until, "token": uuid.uuid4().hex, "at": now, "previous_status": previous_status}


# --- scheduled replies: held -> sending -> sent, or held -> cancelled (the document goes) ---

SCHEDULE_TRANSITIONS = {"held": ("sending", "cancelled"), "sending": ("sent",), "sent": (), "cancelled": ()}


def may_transition(current: str, wanted: str) -> bool:
    return wanted in SCHEDULE_TRANSITIONS.get(current, ())


def schedule_refusal(send_at: datetime, now: datetime) -> Refusal | None:
    if send_at - now > MAX_SCHEDULE:
        return Refusal(422, "`send_at` must be within a year")
    return None


def new_schedule(send_at: datetime, now: datetime) -> dict[str, Any]:
    return {"send_at": send_at, "state": "held", "token": uuid.uuid4().hex, "scheduled_at": now}


def seconds_until(due_at: datetime, now: datetime) -> float:
    return (due_at - now).total_seconds()
