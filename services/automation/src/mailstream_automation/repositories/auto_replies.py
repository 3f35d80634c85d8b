"""`automation_auto_replies`: when each rule last auto-replied to each customer (the rate limit's state)."""

from datetime import datetime, timedelta

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

AUTO_REPLIES = "automation_auto_replies"


class AutoRepliesRepository:
    def __init__(self, db: AsyncDatabase) -> None:
        self.collection = db[AUTO_REPLIES]

    async def take(
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
                await self.collection.update_one(
                    {"_id": key, "last_at": {"$lt": now - interval}}, {"$set": fields}, upsert=True
                )
                return True, None
            except DuplicateKeyError:
                existing = await self.collection.find_one({"_id": key}, {"message_id": 1, "last_at": 1})
                if existing is not None:
                    return existing.get("message_id") == message_id, existing.get("last_at")
                # expired and deleted between the two calls: try again
        raise RuntimeError(f"auto-reply record {key} kept vanishing")
