"""Merge two conversations of a stream, move a message into another or a new conversation (split), and undo
either by moving back. The rules are `conversation_time` (pure); the writes `repositories/conversation_changes`.

A move, step by step (each repeatable, so a request retried after a failure finishes the move):
1. the message points at the target (its Message-ID is a thread key there from now on: later mail that
   references it threads into the target);
2. the source uncounts it, the target counts it (and gets its search terms);
3. both recompute their newest message and newest customer message.

A merge first links the merged conversation to the target (`merged_into`: mail the subject fallback still finds
there follows the link), then moves every message. Unmerge moves back what the merge brought and drops the link.
Every merge, unmerge and move is recorded on the timeline of both conversations and announced.
"""

import uuid
from dataclasses import dataclass
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from .. import conversation_threading as threads
from .. import conversation_time as rules
from ..repositories import conversation_changes as changes_repo
from ..repositories import conversations as conversations_repo
from ..repositories import messages as messages_repo
from .timeline_notes import note

MAX_MERGE_PASSES = 3  # mail threaded into the merged conversation while it was being emptied is moved too


class MoveRefused(Exception):
    def __init__(self, refusal: rules.Refusal) -> None:
        super().__init__(refusal.reason)
        self.status = refusal.status
        self.reason = refusal.reason


@dataclass(frozen=True)
class Moved:
    message: dict[str, Any]
    source: dict[str, Any]
    target: dict[str, Any]
    kind: str


async def _move_one(db: AsyncDatabase, message_id: str, source_id: str, target_id: str) -> bool:
    """Move and recount one message; False when it is not in the target afterwards (gone, or another move of it
    won), in which case nothing is counted here."""
    await changes_repo.reassign_message(db, message_id, source_id, target_id)
    message = await messages_repo.get_internal(db, message_id)
    if message is None or message["conversation_id"] != target_id:
        return False
    await changes_repo.unfold_message(db, source_id, message_id)
    await changes_repo.fold_message(db, target_id, message)
    return True


async def _refresh(db: AsyncDatabase, *conversation_ids: str) -> None:
    for conversation_id in conversation_ids:
        await changes_repo.refresh_latest(db, conversation_id)


async def resolve(db: AsyncDatabase, account_id: str, conversation: dict[str, Any]) -> dict[str, Any]:
    """The conversation an id stands for: a merged one redirects to where it was merged (the end of the chain)."""
    if not conversation.get("merged_into"):
        return conversation
    links = await changes_repo.merge_links(db, conversation["_id"], rules.MAX_MERGE_HOPS)
    final = rules.follow_merges(conversation["_id"], links)
    found = await conversations_repo.get(db, account_id, final)
    return found if found is not None else conversation


async def follow_for_mail(db: AsyncDatabase, conversation: dict[str, Any]) -> dict[str, Any]:
    """Where new mail threaded to `conversation` goes (its internal document): through any merge links."""
    if not conversation.get("merged_into"):
        return conversation
    links = await changes_repo.merge_links(db, conversation["_id"], rules.MAX_MERGE_HOPS)
    final = rules.follow_merges(conversation["_id"], links)
    found = await conversations_repo.get_internal(db, final)
    return found if found is not None else conversation


async def move_message(db, broker, *, account_id: str, message_id: str, target_id: str | None, actor: str) -> Moved:
    """Move one message into `target_id`, or into a new conversation (split) when it is None."""
    message = await messages_repo.get(db, account_id, message_id)
    if message is None:
        raise MoveRefused(rules.Refusal(404, "message not found"))
    source = await conversations_repo.get_internal(db, message["conversation_id"])
    if source is None:
        raise MoveRefused(rules.Refusal(404, "conversation not found"))
    if target_id is None:
        kind = "split"
        target = await _new_conversation_for(db, source, message)
    else:
        target = await conversations_repo.get(db, account_id, target_id)
        refused = rules.move_refusal(source, target)
        if refused is not None:
            raise MoveRefused(refused)
        kind = rules.move_kind(message, target_id)
    assert target is not None
    moved = await _move_one(db, message_id, source["_id"], target["_id"])
    await _refresh(db, source["_id"], target["_id"])
    if not moved:
        raise MoveRefused(rules.Refusal(409, "the message was moved by someone else meanwhile"))
    operation = uuid.uuid4().hex
    details = {"message_id": message_id, "from": source["_id"], "to": target["_id"]}
    for conversation_id in (source["_id"], target["_id"]):
        await note(
            db,
            broker,
            account_id=account_id,
            conversation_id=conversation_id,
            kind=kind,
            operation_key=operation,
            actor=actor,
            details=details,
        )
    return Moved(
        message=await messages_repo.get(db, account_id, message_id) or message,
        source=await conversations_repo.get(db, account_id, source["_id"]) or source,
        target=await conversations_repo.get(db, account_id, target["_id"]) or target,
        kind=kind,
    )


async def _new_conversation_for(db: AsyncDatabase, source: dict[str, Any], message: dict[str, Any]) -> dict[str, Any]:
    """A new conversation on the source's stream for a message split off (the message's subject, the source's
    customer); it is listed once the message is counted in it."""
    subject, _ = threads.strip_reply_prefixes(message.get("subject") or "")
    created, _ = await conversations_repo.create_once(
        db,
        account_id=source["account_id"],
        topic_id=source["topic_id"],
        stream_id=source["stream_id"],
        subject=subject,
        normalized_subject=threads.normalize_subject(message.get("subject") or ""),
        customer=source.get("customer") or {"name": "", "address": ""},
        origin_key=f"split:{message['_id']}:{uuid.uuid4().hex}",
        started_at=message["created_at"],
    )
    return created


async def merge(db, broker, *, account_id: str, source_id: str, target_id: str, actor: str) -> dict[str, Any]:
    """Merge `source_id` into `target_id`; the target after. Repeating a merge finishes it."""
    source = await conversations_repo.get(db, account_id, source_id)
    if source is None:
        raise MoveRefused(rules.Refusal(404, "conversation not found"))
    target = await conversations_repo.get(db, account_id, target_id)
    refused = rules.merge_refusal(source, target)
    if refused is not None:
        raise MoveRefused(refused)
    linked = await changes_repo.mark_merged(db, source_id, target_id)
    if linked is None:
        raise MoveRefused(rules.Refusal(409, "this conversation was merged into another one meanwhile"))
    moved = 0
    for _ in range(MAX_MERGE_PASSES):
        remaining = await changes_repo.message_ids_of(db, source_id)
        if not remaining:
            break
        for message in remaining:
            await _move_one(db, message["_id"], source_id, target_id)
            moved += 1
    await _refresh(db, source_id, target_id)
    operation = f"merge:{source_id}:{target_id}:{linked['merged_at'].isoformat()}"
    details = {"merged": source_id, "into": target_id, "messages_moved": moved}
    for conversation_id in (source_id, target_id):
        await note(
            db,
            broker,
            account_id=account_id,
            conversation_id=conversation_id,
            kind="merged",
            operation_key=operation,
            actor=actor,
            details=details,
        )
    return await conversations_repo.get(db, account_id, target_id) or target  # type: ignore[return-value]


async def unmerge(db, broker, *, account_id: str, source_id: str, actor: str) -> dict[str, Any]:
    """Undo a merge: move back what the merge brought from `source_id`, drop the link; `source_id` after."""
    source = await conversations_repo.get(db, account_id, source_id)
    if source is None:
        raise MoveRefused(rules.Refusal(404, "conversation not found"))
    target_id = source.get("merged_into")
    if not target_id:
        raise MoveRefused(rules.Refusal(409, "this conversation is not merged"))
    in_target = await changes_repo.message_ids_of(db, target_id)
    back = rules.messages_to_unmerge(in_target, source_id)
    for message_id in back:
        await _move_one(db, message_id, target_id, source_id)
    await changes_repo.clear_merged(db, source_id, target_id)
    await _refresh(db, source_id, target_id)
    operation = f"unmerge:{source_id}:{target_id}:{source.get('merged_at')}"
    details = {"unmerged": source_id, "from": target_id, "messages_moved": len(back)}
    for conversation_id in (source_id, target_id):
        await note(
            db,
            broker,
            account_id=account_id,
            conversation_id=conversation_id,
            kind="unmerged",
            operation_key=operation,
            actor=actor,
            details=details,
        )
    return await conversations_repo.get(db, account_id, source_id) or source
