"""`automation_rules` (ordered per account) and `automation_rule_revisions` (one random token per account), and the
per-replica read-through cache of an account's enabled rules.

Rule order is the `position` field, renumbered 0..n-1 whenever a rule is placed or removed; ties (two concurrent
creates) fall back to creation time and id, so the order is always total and stable.

Every rule write ends by giving the account a new rules revision (`rules_cache.py` says why that keeps every
replica's cache correct).
"""

import logging
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

from pydantic import ValidationError
from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from ..metrics import RULES_CACHE
from ..rules import RuleDefinition, StoredRule
from ..rules_cache import RulesCache

log = logging.getLogger(__name__)

RULES = "automation_rules"
RULE_REVISIONS = "automation_rule_revisions"

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
        """The account's current rules revision (None before the account's first rule write)."""
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


class CachedRules:
    """The evaluate consumer's source of rules: the revision read on every message, the rules only when it changed."""

    def __init__(self, repository: RulesRepository, cache: RulesCache) -> None:
        self.repository = repository
        self.cache = cache

    async def enabled_for_account(self, account_id: str) -> tuple[StoredRule, ...]:
        revision = await self.repository.revision(account_id)  # before the rules: see rules_cache.py
        rules = self.cache.lookup(account_id, revision)
        if rules is not None:
            RULES_CACHE.labels("hit").inc()
            return rules
        RULES_CACHE.labels("miss").inc()
        loaded = tuple(await self.repository.enabled_for_account(account_id))
        self.cache.store(account_id, revision, loaded)
        return loaded
