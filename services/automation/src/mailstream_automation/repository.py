"""MongoDB queries of automation: rules (ordered per account), runs (one per rule and message), and the last
auto-reply per rule and customer (the rate limit).

Rule order is the `position` field, renumbered 0..n-1 whenever a rule is placed or removed; ties (two concurrent
creates) fall back to creation time and id, so the order is always total and stable.

Every rule write ends by giving the account a new rules revision (`rules_cache.py` says why that keeps every
replica's cache correct).

Concurrency is MongoDB's single-document atomicity: a run is one insert on its derived `_id` (a duplicate finds the
first), and the auto-reply allowance is one conditional upsert on its natural key. Retention is a TTL index on
`expires_at`, which each document gets when it is written.
"""

import logging
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

from pydantic import ValidationError
from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from mailstream_common import mongo

from .rules import RuleDefinition, StoredRule

log = logging.getLogger(__name__)

RULES = "automation_rules"
RUNS = "automation_runs"
AUTO_REPLIES = "automation_auto_replies"
RULE_REVISIONS = "automation_rule_revisions"

INDEXES = {
    RULES: [
        IndexModel([("account_id", ASCENDING), ("position", ASCENDING), ("_id", ASCENDING)], name="rules_by_position"),
    ],
    RUNS: [  # keyed by _id = run_id_for(rule id, message id): one run per (rule, message)
        IndexModel(
            [("account_id", ASCENDING), ("rule_id", ASCENDING), ("at", DESCENDING), ("_id", DESCENDING)],
            name="runs_by_rule",
        ),
        IndexModel([("account_id", ASCENDING), ("message_id", ASCENDING)], name="runs_by_message"),
        IndexModel([("account_id", ASCENDING), ("conversation_id", ASCENDING)], name="runs_by_conversation"),
        IndexModel([("account_id", ASCENDING), ("at", DESCENDING), ("_id", DESCENDING)], name="runs_by_time"),
        IndexModel([("expires_at", ASCENDING)], expireAfterSeconds=0, name="runs_expiry"),
    ],
    AUTO_REPLIES: [  # keyed by _id = "<rule id>:<customer address>"
        IndexModel([("expires_at", ASCENDING)], expireAfterSeconds=0, name="auto_replies_expiry"),
    ],
    RULE_REVISIONS: [],  # keyed by _id = account id
}


async def ensure_indexes(db: AsyncDatabase) -> None:
    await mongo.ensure_indexes(db, INDEXES)


_ORDER = [("position", ASCENDING), ("created_at", ASCENDING), ("_id", ASCENDING)]


class RulesRepository:
    def __init__(self, db: AsyncDatabase) -> None:
        self.collection = db[RULES]
        self.revisions = db[RULE_REVISIONS]

    async def get(self, account_id: str, rule_id: str) -> StoredRule | None:
        doc = await self.collection.find_one({"_id": rule_id, "account_id": account_id})
        return None if doc is None else StoredRule.from_document(doc)

    async def enabled_for_account(self, account_id: str) -> list[StoredRule]:
        """The account's enabled rules in evaluation order. A stored rule that no longer validates (e.g. a time zone
        removed from the tz database) is logged and left out, so it cannot stop the account's other rules."""
        rules = []
        async for doc in self.collection.find({"account_id": account_id, "enabled": True}).sort(_ORDER):
            try:
                rules.append(StoredRule.from_document(doc))
            except ValidationError as exc:
                log.error("stored rule is invalid; skipped", extra={"rule_id": doc.get("_id"), "error": str(exc)})
        return rules

    async def count(self, account_id: str) -> int:
        return await self.collection.count_documents({"account_id": account_id})

    async def page(
        self, account_id: str, *, limit: int, after: dict[str, Any] | None, filters: dict[str, Any]
    ) -> list[StoredRule]:
        query: dict[str, Any] = {"account_id": account_id, **filters}
        if after is not None:
            query["$or"] = [
                {"position": {"$gt": after["position"]}},
                {"position": after["position"], "_id": {"$gt": after["id"]}},
            ]
        cursor = self.collection.find(query).sort([("position", ASCENDING), ("_id", ASCENDING)]).limit(limit)
        return [StoredRule.from_document(doc) async for doc in cursor]

    async def revision(self, account_id: str) -> str | None:
        """The account's current rules revision (None before its first rule write since revisions exist)."""
        doc = await self.revisions.find_one({"_id": account_id})
        return None if doc is None else doc.get("revision")

    async def _new_revision(self, account_id: str) -> None:
        """A fresh random token: it differs from every earlier one, even after the document was deleted by hand."""
        document = {"revision": uuid4().hex, "at": datetime.now(UTC)}
        try:
            await self.revisions.replace_one({"_id": account_id}, document, upsert=True)
        except DuplicateKeyError:  # two first upserts of one `_id` at once: one inserted, so replace that one
            await self.revisions.replace_one({"_id": account_id}, document)

    async def create(
        self, account_id: str, definition: RuleDefinition, *, position: int | None, now: datetime
    ) -> StoredRule:
        try:
            return await self._create(account_id, definition, position=position, now=now)
        finally:  # also after a partial write: a cache must not keep what may have changed
            await self._new_revision(account_id)

    async def _create(
        self, account_id: str, definition: RuleDefinition, *, position: int | None, now: datetime
    ) -> StoredRule:
        last = await self.collection.find_one(
            {"account_id": account_id}, {"position": 1}, sort=[("position", DESCENDING)]
        )
        doc = {
            "_id": uuid4().hex,
            "account_id": account_id,
            **definition.to_document(),
            "position": (last["position"] + 1) if last else 0,
            "created_at": now,
            "updated_at": now,
        }
        await self.collection.insert_one(doc)
        if position is not None:
            await self._place(account_id, doc["_id"], position)
        return await self.get(account_id, doc["_id"])  # type: ignore[return-value]

    async def update(
        self, account_id: str, rule_id: str, definition: RuleDefinition, *, position: int | None, now: datetime
    ) -> StoredRule | None:
        try:
            return await self._update(account_id, rule_id, definition, position=position, now=now)
        finally:
            await self._new_revision(account_id)

    async def _update(
        self, account_id: str, rule_id: str, definition: RuleDefinition, *, position: int | None, now: datetime
    ) -> StoredRule | None:
        result = await self.collection.update_one(
            {"_id": rule_id, "account_id": account_id}, {"$set": {**definition.to_document(), "updated_at": now}}
        )
        if result.matched_count == 0:
            return None
        if position is not None:
            await self._place(account_id, rule_id, position)
        return await self.get(account_id, rule_id)

    async def record_fired(self, rule_id: str, at: datetime) -> None:
        """Statistics shown on the rule (best effort: a lost increment is not worth a retry). Not a new revision:
        evaluation never looks at them, and a revision per fired rule would empty every replica's cache."""
        await self.collection.update_one({"_id": rule_id}, {"$set": {"last_fired_at": at}, "$inc": {"fired_count": 1}})

    async def delete(self, account_id: str, rule_id: str) -> bool:
        try:
            result = await self.collection.delete_one({"_id": rule_id, "account_id": account_id})
            if result.deleted_count:
                await self._renumber(account_id, await self._ordered_ids(account_id))
            return bool(result.deleted_count)
        finally:
            await self._new_revision(account_id)

    async def _ordered_ids(self, account_id: str) -> list[str]:
        cursor = self.collection.find({"account_id": account_id}, {"_id": 1}).sort(_ORDER)
        return [doc["_id"] async for doc in cursor]

    async def _place(self, account_id: str, rule_id: str, position: int) -> None:
        ids = [i for i in await self._ordered_ids(account_id) if i != rule_id]
        ids.insert(min(position, len(ids)), rule_id)
        await self._renumber(account_id, ids)

    async def _renumber(self, account_id: str, ids: list[str]) -> None:
        cursor = self.collection.find({"account_id": account_id}, {"position": 1})
        current = {doc["_id"]: doc.get("position") async for doc in cursor}
        for index, rule_id in enumerate(ids):
            if current.get(rule_id) != index:
                await self.collection.update_one(
                    {"_id": rule_id, "account_id": account_id}, {"$set": {"position": index}}
                )


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
        self.auto_replies = db[AUTO_REPLIES]

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

    async def take_auto_reply(
        self, rule_id: str, customer: str, message_id: str, now: datetime, interval: timedelta, *, keep_until: datetime
    ) -> tuple[bool, datetime | None]:
        """Record that `rule_id` auto-replies to `customer` for `message_id` now, unless it did so for another message
        within `interval`. Returns (this message may auto-reply, when the rule last replied if it may not).

        One upsert guarded by `last_at < now - interval`: with a recent reply the filter misses, the upsert collides
        on the natural `_id` and this message loses; of concurrent messages exactly one wins. A redelivered message
        finds its own record and keeps its allowance. `keep_until` is the record's expiry (TTL index)."""
        key = f"{rule_id}:{customer}"
        fields = {"last_at": now, "message_id": message_id, "rule_id": rule_id, "expires_at": keep_until}
        for _ in range(3):
            try:
                await self.auto_replies.update_one(
                    {"_id": key, "last_at": {"$lt": now - interval}}, {"$set": fields}, upsert=True
                )
                return True, None
            except DuplicateKeyError:
                existing = await self.auto_replies.find_one({"_id": key}, {"message_id": 1, "last_at": 1})
                if existing is not None:
                    return existing.get("message_id") == message_id, existing.get("last_at")
                # expired and deleted between the two calls: try again
        raise RuntimeError(f"auto-reply record {key} kept vanishing")
