"""Read-only checks of what a rule refers to in collections the inbox owns: topics, streams, canned responses.

Only ids are looked up (`{_id, account_id}`, and a stream's topic and `deleted` flag), so a rule can never point at
another account's data and a typo is a 422 at save time rather than a silent no-op on the first mail.
"""

from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from mailstream_common import streams
from mailstream_common.contracts.conversations import AutoReplyAction

from .rules import RuleDefinition

TOPICS = "topics"
CANNED_RESPONSES = "canned_responses"


async def _owned(db: AsyncDatabase, collection: str, account_id: str, item_id: str) -> bool:
    return await db[collection].find_one({"_id": item_id, "account_id": account_id}, {"_id": 1}) is not None


async def reference_errors(db: AsyncDatabase, account_id: str, rule: RuleDefinition) -> list[tuple[list[Any], str]]:
    """(location, message) of every id in the rule that is not the account's own; empty when all are."""
    errors: list[tuple[list[Any], str]] = []
    if rule.topic_id is not None and not await _owned(db, TOPICS, account_id, rule.topic_id):
        errors.append((["body", "topic_id"], "unknown topic"))
    for index, stream_id in enumerate(rule.stream_ids):
        stream = await streams.get_stream(db, stream_id)
        if stream is None or stream.account_id != account_id or stream.deleted:
            errors.append((["body", "stream_ids", index], "unknown stream"))
        elif rule.topic_id is not None and stream.topic_id != rule.topic_id:
            errors.append((["body", "stream_ids", index], "stream is not in the rule's topic"))
    for index, action in enumerate(rule.actions):
        if isinstance(action, AutoReplyAction) and not await _owned(
            db, CANNED_RESPONSES, account_id, action.canned_response_id
        ):
            errors.append((["body", "actions", index, "canned_response_id"], "unknown canned response"))
    return errors
