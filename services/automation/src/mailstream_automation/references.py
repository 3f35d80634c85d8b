"""Save-time checks of what a rule refers to: topics, streams and canned responses (inbox's, seen through
automation's own projection, `known_references`; inbox's collections are never read).

Only ids are looked up (the account, a stream's topic and the `deleted` flag), so a rule can never point at another
account's data and a typo is a 422 at save time rather than a silent no-op on the first mail. An entity created a
moment ago is known once its `*.changed` event has been applied (normally within milliseconds): an id that is not
known yet is looked up again for up to `settle_seconds` before it counts as unknown, so a client that creates a
topic and then a rule for it does not see a spurious 422.
"""

import asyncio
import time
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from mailstream_common.contracts.conversations import AutoReplyAction

from .known_references import KnownReferences
from .rules import RuleDefinition

SETTLE_POLL_SECONDS = 0.05


async def reference_errors(
    db: AsyncDatabase, account_id: str, rule: RuleDefinition, *, settle_seconds: float = 0.0
) -> list[tuple[list[Any], str]]:
    """(location, message) of every id in the rule that is not the account's own; empty when all are."""
    deadline = time.monotonic() + settle_seconds
    while True:
        errors = await _errors(KnownReferences(db), account_id, rule)
        if not errors or time.monotonic() >= deadline:
            return errors
        await asyncio.sleep(SETTLE_POLL_SECONDS)


async def _errors(known: KnownReferences, account_id: str, rule: RuleDefinition) -> list[tuple[list[Any], str]]:
    errors: list[tuple[list[Any], str]] = []
    if rule.topic_id is not None and await known.find_live("topic", rule.topic_id, account_id) is None:
        errors.append((["body", "topic_id"], "unknown topic"))
    for index, stream_id in enumerate(rule.stream_ids):
        stream = await known.find_live("stream", stream_id, account_id)
        if stream is None:
            errors.append((["body", "stream_ids", index], "unknown stream"))
        elif rule.topic_id is not None and stream.get("topic_id") != rule.topic_id:
            errors.append((["body", "stream_ids", index], "stream is not in the rule's topic"))
    for index, action in enumerate(rule.actions):
        if isinstance(action, AutoReplyAction) and (
            await known.find_live("canned_response", action.canned_response_id, account_id) is None
        ):
            errors.append((["body", "actions", index, "canned_response_id"], "unknown canned response"))
    return errors
