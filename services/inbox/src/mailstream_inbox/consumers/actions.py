"""`inbox.actions`: apply an automation rule's actions to a conversation (inbox is the only writer of them).

Exactly once per (rule, trigger message), even under redelivery: the trigger message records the rule in
`applied_rules` after everything ran; a redelivery that finds it there only completes an auto-reply whose publish
was interrupted (the outbound message is unique per `auto_reply:<rule>:<trigger>` and carries its own request).
A crash before that mark re-runs the field changes, which are idempotent (sets, tag additions/removals).
"""

import logging
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from mailstream_common.broker import Broker, Delivery, Retry
from mailstream_common.contracts import ConversationActionsRequested, ConversationChanged
from mailstream_common.contracts.conversations import AutoReplyAction, RuleAction

from ..repositories import conversations as conversations_repo
from ..repositories import messages as messages_repo
from ..settings import InboxSettings
from ..use_cases import send_reply

log = logging.getLogger(__name__)

FIELDS = ("status", "tags", "assignee", "priority")
MAX_PLAN_ATTEMPTS = 16  # each attempt lost means another writer made progress


def plan_changes(conversation: dict[str, Any], actions: list[RuleAction]) -> dict[str, Any]:
    """The conversation fields after the actions, in order (pure); only fields that differ are returned."""
    before = {
        "status": conversation.get("status", "open"),
        "tags": list(conversation.get("tags", [])),
        "assignee": conversation.get("assignee"),
        "priority": conversation.get("priority", "normal"),
    }
    state = {**before, "tags": list(before["tags"])}
    for action in actions:
        if action.type == "add_tags":
            state["tags"] += [t for t in action.tags if t not in state["tags"]]
        elif action.type == "remove_tags":
            state["tags"] = [t for t in state["tags"] if t not in action.tags]
        elif action.type == "assign":
            state["assignee"] = action.assignee
        elif action.type == "set_status":
            state["status"] = action.status
        elif action.type == "set_priority":
            state["priority"] = action.priority
    return {k: v for k, v in state.items() if v != before[k]}


def auto_reply_key(rule_id: str, trigger_message_id: str) -> str:
    return f"auto_reply:{rule_id}:{trigger_message_id}"


def conversation_changed(conversation: dict[str, Any], changed_by: str, correlation_id: str | None):
    return ConversationChanged(
        account_id=conversation["account_id"],
        conversation_id=conversation["_id"],
        status=conversation.get("status", "open"),
        tags=conversation.get("tags", []),
        assignee=conversation.get("assignee"),
        priority=conversation.get("priority", "normal"),
        changed_by=changed_by,
        correlation_id=correlation_id,
        participants=conversation.get("participants", []),
    )


async def auto_reply(
    db: AsyncDatabase,
    broker: Broker,
    settings: InboxSettings,
    command: ConversationActionsRequested,
    action: AutoReplyAction,
    conversation: dict[str, Any],
    trigger: dict[str, Any] | None,
    *,
    already_applied: bool,
) -> None:
    key = auto_reply_key(command.rule_id, command.trigger_message_id)
    if already_applied:  # the first run decided whether to reply; a redelivery only finishes what it started
        await send_reply.complete_interrupted(db, broker, conversation, key)
        return
    request = send_reply.ReplyRequest(
        requested_by=f"automation:{command.rule_id}",
        canned_response_id=action.canned_response_id,
        apply_template=action.apply_template,
        kind="auto_reply",
        dedup_key=key,
        trigger_headers=(trigger or {}).get("headers", []),
    )
    outcome = await send_reply.send_reply(db, broker, conversation, request, inbound_domain=settings.inbound_domain)
    if isinstance(outcome, send_reply.Refused):
        log.warning("auto_reply skipped", extra={"rule_id": command.rule_id, "reason": outcome.reason})


async def change_fields(
    db: AsyncDatabase, conversation: dict[str, Any], actions: list[RuleAction]
) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """Apply field actions to what the conversation holds now: (conversation after, changes made).

    The update is guarded by the values the plan was made from, so an agent's change in between (tags are a whole
    list) is never overwritten with a stale plan: the plan is made again from the conversation as it is then."""
    for _ in range(MAX_PLAN_ATTEMPTS):
        changes = plan_changes(conversation, actions)
        if not changes:
            return conversation, changes
        expected = {field: conversation.get(field) for field in changes}
        updated = await conversations_repo.update_fields(
            db, conversation["account_id"], conversation["_id"], changes, expected=expected
        )
        if updated is not None:
            return updated, changes
        current = await conversations_repo.get(db, conversation["account_id"], conversation["_id"])
        if current is None:
            return None, {}
        conversation = current
    raise Retry(f"conversation {conversation['_id']} kept changing under rule actions")


async def apply(
    db: AsyncDatabase,
    broker: Broker,
    settings: InboxSettings,
    command: ConversationActionsRequested,
    delivery: Delivery | None = None,
) -> None:
    conversation = await conversations_repo.get(db, command.account_id, command.conversation_id)
    if conversation is None:
        log.warning("actions for an unknown conversation ignored", extra={"conversation_id": command.conversation_id})
        return
    trigger = await messages_repo.get_internal(db, command.trigger_message_id)
    already_applied = trigger is not None and command.rule_id in trigger.get("applied_rules", [])
    field_actions = [a for a in command.actions if a.type != "auto_reply"]
    changed_by = f"automation:{command.rule_id}"

    if not already_applied and field_actions:
        conversation, changes = await change_fields(db, conversation, field_actions)
        retried = delivery is not None and (delivery.attempt > 1 or delivery.redelivered)
        if conversation is not None and (changes or retried):
            await broker.publish(conversation_changed(conversation, changed_by, command.correlation_id))
    if conversation is None:
        return
    for action in command.actions:
        if isinstance(action, AutoReplyAction):
            await auto_reply(
                db, broker, settings, command, action, conversation, trigger, already_applied=already_applied
            )
    if trigger is not None and not already_applied:
        await messages_repo.mark_rule_applied(db, trigger["_id"], command.rule_id)


def make_handler(db: AsyncDatabase, broker: Broker, settings: InboxSettings):
    async def handle(command: ConversationActionsRequested, delivery: Delivery) -> None:
        await apply(db, broker, settings, command, delivery)

    return handle
