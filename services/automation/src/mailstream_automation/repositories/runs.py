"""`automation_runs`: one run per (rule, message), keyed by the `_id` derived from that pair."""

from datetime import datetime
from typing import Any

from pymongo import DESCENDING
from pymongo.asynchronous.database import AsyncDatabase

from mailstream_common import mongo

RUNS = "automation_runs"

# What the consumer needs of an earlier run to finish it: not the conditions and reasons, which only the API shows.
_DECISION_FIELDS = {
    f: 1
    for f in (
        "rule_id",
        "rule_name",
        "account_id",
        "message_id",
        "conversation_id",
        "fired",
        "actions",
        "published",
        "correlation_id",
    )
}


class RunsRepository:
    def __init__(self, db: AsyncDatabase) -> None:
        self.collection = db[RUNS]

    async def for_message(self, account_id: str, message_id: str) -> list[dict[str, Any]]:
        return [doc async for doc in self.collection.find({"account_id": account_id, "message_id": message_id})]

    async def decisions_for_message(self, account_id: str, message_id: str) -> dict[str, dict[str, Any]]:
        """The runs already recorded for a message, by rule id (one indexed query, only the fields that decide)."""
        cursor = self.collection.find({"account_id": account_id, "message_id": message_id}, _DECISION_FIELDS)
        return {doc["rule_id"]: doc async for doc in cursor}

    async def insert_once(self, run: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """Record a run unless its (rule, message) has one; return (the stored run, whether this one is it)."""
        return await mongo.insert_once(self.collection, run, {"_id": run["_id"]})

    async def mark_published(self, run_id: str, at: datetime) -> None:
        await self.collection.update_one({"_id": run_id}, {"$set": {"published": True, "published_at": at}})

    async def page(
        self,
        account_id: str,
        *,
        limit: int,
        before: dict[str, Any] | None,
        filters: dict[str, Any],
    ) -> list[dict[str, Any]]:
        """Newest first; `filters` on rule_id, message_id, conversation_id, fired (all indexed with account_id)."""
        query: dict[str, Any] = {"account_id": account_id, **filters}
        if before is not None:
            query["$or"] = [{"at": {"$lt": before["at"]}}, {"at": before["at"], "_id": {"$lt": before["id"]}}]
        cursor = self.collection.find(query).sort([("at", DESCENDING), ("_id", DESCENDING)]).limit(limit)
        return [doc async for doc in cursor]
