"""Automation's part of a data erasure (issue 17): the runs of the messages to erase or about the address, and the
auto-reply rate-limit records they left.

Re-runnable: only deletes, which find nothing the second time. An auto-reply record's `_id` is
"<rule id>:<customer address>", and rules are deleted for good, so records are found by the message that took them
(inbox lists it) as well as by the account's present rules.
"""

from typing import Any

from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase

from mailstream_common.contracts import DataErasureRequested, DataExportRequested

from .auto_replies import AUTO_REPLIES
from .rules import RULES
from .runs import RUNS

INDEXES = {
    RUNS: [IndexModel([("account_id", ASCENDING), ("customer", ASCENDING)], name="runs_by_customer")],
    AUTO_REPLIES: [IndexModel([("message_id", ASCENDING)], name="auto_replies_by_message")],
}


async def erase(db: AsyncDatabase, request: DataErasureRequested) -> dict[str, int]:
    runs_query: list[dict[str, Any]] = []
    replies_query: list[dict[str, Any]] = []
    if request.message_ids:
        runs_query.append({"account_id": request.account_id, "message_id": {"$in": request.message_ids}})
        replies_query.append({"message_id": {"$in": request.message_ids}})
    if request.conversation_ids:
        runs_query.append({"account_id": request.account_id, "conversation_id": {"$in": request.conversation_ids}})
    if request.address:
        runs_query.append({"account_id": request.account_id, "customer": request.address})
        rule_ids = [doc["_id"] async for doc in db[RULES].find({"account_id": request.account_id}, {"_id": 1})]
        replies_query.append({"_id": {"$in": [f"{rule_id}:{request.address}" for rule_id in rule_ids]}})
    runs = sum([(await db[RUNS].delete_many(query)).deleted_count for query in runs_query])
    replies = sum([(await db[AUTO_REPLIES].delete_many(query)).deleted_count for query in replies_query])
    return {"runs": runs, "auto_reply_records": replies}


async def export(db: AsyncDatabase, request: DataExportRequested) -> dict[str, list[dict[str, Any]]]:
    """The runs about the person's messages or with them as the customer."""
    found: dict[str, dict[str, Any]] = {}
    queries = [{"account_id": request.account_id, "customer": request.address}]
    if request.message_ids:
        queries.append({"account_id": request.account_id, "message_id": {"$in": request.message_ids}})
    for query in queries:
        async for doc in db[RUNS].find(query):
            found[doc["_id"]] = doc
    return {"runs": list(found.values())}
