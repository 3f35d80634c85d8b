"""The webhook collections (owned by this package; nothing else reads them) and every query on them.

- `webhook_subscriptions`: _id (`wh_...`), account_id, url, event_types, enabled, description, secret_sealed
  (Fernet token of the `whsec_` secret), previous_secret_sealed/previous_secret_until (the secret a rotation
  replaced, still signing beside the new one until then), created_at, updated_at, revision; failing_since (first failure of the
  current run of failures, unset by a success), disabled_at, disabled_reason, disabled_announced.
- `webhook_deliveries`: one per (subscription, fact): _id (`msg_...`, also the `webhook-id` header, derived from
  both, so a fact seen twice is one delivery), account_id, subscription_id, event_type, fact_key, body, state
  (pending -> delivered | failed), sequence (the scheduled attempt; +1 per schedule), attempts, next_attempt_at,
  schedule_pending (a retry's or replay's command is not confirmed by the broker yet; a first attempt's command is
  published again whenever its fact comes again before that attempt), lease_token/lease_until (one
  dispatcher holds the delivery while its HTTP request runs), last_status, last_error, created_at, expires_at (TTL).
- `webhook_attempts`: one per HTTP request made: status code, latency, a snippet of the response, the error.
- `webhook_stream_states`: the last stream status seen per stream (to tell a status change from other changes).
"""

import contextlib
import hashlib
import uuid
from datetime import datetime, timedelta
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from mailstream_common import mongo
from mailstream_common.contracts import utcnow

from ..repositories.pages import keyset_page

SUBSCRIPTIONS = "webhook_subscriptions"
DELIVERIES = "webhook_deliveries"
ATTEMPTS = "webhook_attempts"
STREAM_STATES = "webhook_stream_states"

RETENTION = timedelta(days=30)

INDEXES = {
    SUBSCRIPTIONS: [
        IndexModel(
            [("account_id", ASCENDING), ("created_at", ASCENDING), ("_id", ASCENDING)], name="webhook_subs_list"
        ),
        # The dispatcher's lookup for every event: an account's enabled subscriptions to one type (multikey).
        IndexModel(
            [("account_id", ASCENDING), ("event_types", ASCENDING), ("enabled", ASCENDING)], name="webhook_subs_match"
        ),
    ],
    DELIVERIES: [
        IndexModel(
            [
                ("subscription_id", ASCENDING),
                ("account_id", ASCENDING),
                ("created_at", DESCENDING),
                ("_id", DESCENDING),
            ],
            name="webhook_deliveries_list",
        ),
        IndexModel([("expires_at", ASCENDING)], name="webhook_deliveries_ttl", expireAfterSeconds=0),
    ],
    ATTEMPTS: [
        IndexModel(
            [("delivery_id", ASCENDING), ("account_id", ASCENDING), ("at", ASCENDING), ("_id", ASCENDING)],
            name="webhook_attempts_list",
        ),
        IndexModel([("expires_at", ASCENDING)], name="webhook_attempts_ttl", expireAfterSeconds=0),
    ],
    STREAM_STATES: [],
}

_NO_SECRET = {"secret_sealed": 0, "previous_secret_sealed": 0}


# --- subscriptions ------------------------------------------------------------------------------------------------


async def create_subscription(
    db: AsyncDatabase,
    account_id: str,
    *,
    url: str,
    event_types: list[str],
    enabled: bool,
    description: str,
    secret_sealed: str,
) -> dict[str, Any]:
    now = utcnow()
    doc = {
        "_id": f"wh_{uuid.uuid4().hex}",
        "account_id": account_id,
        "url": url,
        "event_types": sorted(set(event_types)),
        "enabled": enabled,
        "description": description,
        "secret_sealed": secret_sealed,
        "created_at": now,
        "updated_at": now,
        "revision": 1,
    }
    await db[SUBSCRIPTIONS].insert_one(doc)
    return {k: v for k, v in doc.items() if k != "secret_sealed"}


async def get_subscription(db: AsyncDatabase, account_id: str, subscription_id: str) -> dict[str, Any] | None:
    return await db[SUBSCRIPTIONS].find_one({"_id": subscription_id, "account_id": account_id}, _NO_SECRET)


async def get_subscription_for_sending(db: AsyncDatabase, subscription_id: str) -> dict[str, Any] | None:
    """The one read that includes the sealed secret: the dispatcher's, to sign."""
    return await db[SUBSCRIPTIONS].find_one({"_id": subscription_id})


async def list_subscriptions(
    db: AsyncDatabase, account_id: str, *, limit: int, after: dict[str, Any] | None = None
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    return await keyset_page(
        db[SUBSCRIPTIONS], {"account_id": account_id}, limit=limit, after=after, projection=_NO_SECRET
    )


async def update_subscription(
    db: AsyncDatabase, account_id: str, subscription_id: str, changes: dict[str, Any]
) -> dict[str, Any] | None:
    """Apply the given fields; enabling again clears the failure record (the operator says the endpoint is fixed)."""
    update: dict[str, Any] = {"$set": {**changes, "updated_at": utcnow()}, "$inc": {"revision": 1}}
    if "event_types" in changes:
        update["$set"]["event_types"] = sorted(set(changes["event_types"]))
    if changes.get("enabled") is True:
        update["$unset"] = {"failing_since": "", "disabled_at": "", "disabled_reason": "", "disabled_announced": ""}
    return await db[SUBSCRIPTIONS].find_one_and_update(
        {"_id": subscription_id, "account_id": account_id},
        update,
        projection=_NO_SECRET,
        return_document=ReturnDocument.AFTER,
    )


async def replace_secret(
    db: AsyncDatabase, account_id: str, subscription_id: str, secret_sealed: str, *, grace: timedelta
) -> dict[str, Any] | None:
    """Put a new secret in place; the one it replaces still signs (beside the new one) for `grace`, so receivers
    can switch without refusing a request. The subscription after it, or None if there is no such subscription."""
    for _ in range(5):  # guarded on the secret read: a concurrent rotation makes this one read again
        current = await db[SUBSCRIPTIONS].find_one({"_id": subscription_id, "account_id": account_id})
        if current is None:
            return None
        now = utcnow()
        updated = await db[SUBSCRIPTIONS].find_one_and_update(
            {"_id": subscription_id, "account_id": account_id, "secret_sealed": current["secret_sealed"]},
            {
                "$set": {
                    "secret_sealed": secret_sealed,
                    "previous_secret_sealed": current["secret_sealed"],
                    "previous_secret_until": now + grace,
                    "updated_at": now,
                },
                "$inc": {"revision": 1},
            },
            projection=_NO_SECRET,
            return_document=ReturnDocument.AFTER,
        )
        if updated is not None:
            return updated
    raise RuntimeError("the secret changed under five rotations in a row")


async def delete_subscription(db: AsyncDatabase, account_id: str, subscription_id: str) -> bool:
    """Delete; its pending deliveries find it gone and end as failed ("subscription deleted")."""
    result = await db[SUBSCRIPTIONS].delete_one({"_id": subscription_id, "account_id": account_id})
    return result.deleted_count == 1


async def matching_subscriptions(db: AsyncDatabase, account_id: str, event_type: str) -> list[dict[str, Any]]:
    cursor = db[SUBSCRIPTIONS].find(
        {"account_id": account_id, "event_types": event_type, "enabled": True}, {"_id": 1, "account_id": 1}
    )
    return await cursor.to_list(length=None)


async def record_failure(db: AsyncDatabase, subscription_id: str, now: datetime) -> dict[str, Any] | None:
    """Start the run of failures if none is running; the subscription after it (with failing_since)."""
    await db[SUBSCRIPTIONS].update_one(
        {"_id": subscription_id, "failing_since": {"$exists": False}}, {"$set": {"failing_since": now}}
    )
    return await db[SUBSCRIPTIONS].find_one({"_id": subscription_id}, _NO_SECRET)


async def record_success(db: AsyncDatabase, subscription_id: str) -> None:
    await db[SUBSCRIPTIONS].update_one(
        {"_id": subscription_id, "failing_since": {"$exists": True}}, {"$unset": {"failing_since": ""}}
    )


async def disable_failing(
    db: AsyncDatabase, subscription_id: str, failing_before: datetime, reason: str
) -> dict[str, Any] | None:
    """Disable a subscription failing since before `failing_before`; the subscription if this call disabled it
    (exactly one caller wins), else None."""
    return await db[SUBSCRIPTIONS].find_one_and_update(
        {"_id": subscription_id, "enabled": True, "failing_since": {"$lte": failing_before}},
        {
            "$set": {
                "enabled": False,
                "disabled_at": utcnow(),
                "disabled_reason": reason,
                "disabled_announced": False,
            },
            "$inc": {"revision": 1},
        },
        projection=_NO_SECRET,
        return_document=ReturnDocument.AFTER,
    )


async def mark_disabled_announced(db: AsyncDatabase, subscription_id: str) -> None:
    await db[SUBSCRIPTIONS].update_one({"_id": subscription_id}, {"$set": {"disabled_announced": True}})


# --- deliveries ---------------------------------------------------------------------------------------------------


def delivery_id(subscription_id: str, event_type: str, fact_key: str) -> str:
    """`msg_` + 32 hex digits: the same fact for the same subscription always gets the same id."""
    digest = hashlib.sha256(f"{subscription_id}\n{event_type}\n{fact_key}".encode()).hexdigest()
    return f"msg_{digest[:32]}"


async def create_delivery(
    db: AsyncDatabase, *, subscription: dict[str, Any], event_type: str, fact_key: str, body: bytes, now: datetime
) -> tuple[dict[str, Any], bool]:
    """The delivery of a fact to a subscription, created once; (delivery, created)."""
    doc = {
        "_id": delivery_id(subscription["_id"], event_type, fact_key),
        "account_id": subscription["account_id"],
        "subscription_id": subscription["_id"],
        "event_type": event_type,
        "fact_key": fact_key,
        "body": body.decode(),
        "state": "pending",
        "sequence": 1,
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
        "expires_at": now + RETENTION,
    }
    return await mongo.insert_once(db[DELIVERIES], doc, {"_id": doc["_id"]})


async def get_delivery(db: AsyncDatabase, delivery_id_: str) -> dict[str, Any] | None:
    return await db[DELIVERIES].find_one({"_id": delivery_id_})


async def get_account_delivery(
    db: AsyncDatabase, account_id: str, subscription_id: str, delivery_id_: str
) -> dict[str, Any] | None:
    return await db[DELIVERIES].find_one(
        {"_id": delivery_id_, "account_id": account_id, "subscription_id": subscription_id}
    )


async def list_deliveries(
    db: AsyncDatabase, account_id: str, subscription_id: str, *, limit: int, after: dict[str, Any] | None = None
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    return await keyset_page(
        db[DELIVERIES],
        {"subscription_id": subscription_id, "account_id": account_id},
        limit=limit,
        after=after,
        descending=True,
    )


async def schedule_published(db: AsyncDatabase, delivery_id_: str, sequence: int) -> None:
    await db[DELIVERIES].update_one(
        {"_id": delivery_id_, "sequence": sequence, "schedule_pending": True}, {"$unset": {"schedule_pending": ""}}
    )


async def claim(
    db: AsyncDatabase, delivery_id_: str, sequence: int, now: datetime, lease_seconds: float, *, due_by: datetime
) -> dict[str, Any] | None:
    """Take the pending delivery at `sequence`, due by `due_by`, for one HTTP attempt, unless another dispatcher
    holds it; the delivery with this claim's `lease_token`, or None."""
    return await db[DELIVERIES].find_one_and_update(
        {
            "_id": delivery_id_,
            "state": "pending",
            "sequence": sequence,
            "next_attempt_at": {"$lte": due_by},
            "lease_until": {"$not": {"$gt": now}},
        },
        {"$set": {"lease_token": uuid.uuid4().hex, "lease_until": now + timedelta(seconds=lease_seconds)}},
        return_document=ReturnDocument.AFTER,
    )


async def finish_delivered(db: AsyncDatabase, delivery: dict[str, Any], status: int, now: datetime) -> bool:
    result = await db[DELIVERIES].update_one(
        {"_id": delivery["_id"], "lease_token": delivery["lease_token"], "state": "pending"},
        {
            "$set": {"state": "delivered", "delivered_at": now, "last_status": status, "last_error": None},
            "$inc": {"attempts": 1},
            "$unset": {"lease_token": "", "lease_until": "", "next_attempt_at": ""},
        },
    )
    return result.modified_count == 1


async def finish_failed_attempt(
    db: AsyncDatabase,
    delivery: dict[str, Any],
    *,
    status: int | None,
    error: str,
    next_attempt_at: datetime | None,
) -> dict[str, Any] | None:
    """Record a failed attempt: schedule the next one (sequence + 1, its command still to publish) or, with no
    next attempt, fail the delivery. The delivery after it, or None if this claim was no longer the holder."""
    unset = {"lease_token": "", "lease_until": ""}
    if next_attempt_at is None:
        changes: dict[str, Any] = {"$set": {"state": "failed", "last_status": status, "last_error": error}}
        unset["next_attempt_at"] = ""
    else:
        changes = {
            "$set": {
                "last_status": status,
                "last_error": error,
                "next_attempt_at": next_attempt_at,
                "schedule_pending": True,
            },
            "$inc": {"sequence": 1},
        }
    changes.setdefault("$inc", {})["attempts"] = 1
    changes["$unset"] = unset
    return await db[DELIVERIES].find_one_and_update(
        {"_id": delivery["_id"], "lease_token": delivery["lease_token"], "state": "pending"},
        changes,
        return_document=ReturnDocument.AFTER,
    )


async def fail_without_attempt(db: AsyncDatabase, delivery_id_: str, sequence: int, reason: str) -> None:
    """End a pending delivery that cannot be attempted (its subscription was deleted or disabled)."""
    await db[DELIVERIES].update_one(
        {"_id": delivery_id_, "state": "pending", "sequence": sequence},
        {"$set": {"state": "failed", "last_error": reason}, "$unset": {"next_attempt_at": "", "schedule_pending": ""}},
    )


async def reopen_for_replay(
    db: AsyncDatabase, account_id: str, delivery_id_: str, now: datetime
) -> dict[str, Any] | None:
    """A delivered or failed delivery back to pending, due now, with a fresh retry schedule (the attempts count
    keeps growing; `replay_base` marks where this run of the schedule starts)."""
    delivery = await db[DELIVERIES].find_one({"_id": delivery_id_, "account_id": account_id})
    if delivery is None or delivery["state"] == "pending":
        return None
    return await db[DELIVERIES].find_one_and_update(
        {"_id": delivery_id_, "account_id": account_id, "state": delivery["state"], "sequence": delivery["sequence"]},
        {
            "$set": {
                "state": "pending",
                "next_attempt_at": now,
                "schedule_pending": True,
                "replay_base": delivery.get("attempts", 0),
                "expires_at": now + RETENTION,
            },
            "$inc": {"sequence": 1, "replays": 1},
        },
        return_document=ReturnDocument.AFTER,
    )


# --- attempts -----------------------------------------------------------------------------------------------------


async def record_attempt(db: AsyncDatabase, delivery: dict[str, Any], outcome: dict[str, Any], at: datetime) -> None:
    """One HTTP request made for a delivery; keyed by the claim, so a redelivered record is written once."""
    doc = {
        "_id": f"{delivery['_id']}:{delivery['lease_token']}",
        "delivery_id": delivery["_id"],
        "subscription_id": delivery["subscription_id"],
        "account_id": delivery["account_id"],
        "sequence": delivery["sequence"],
        "at": at,
        "expires_at": at + RETENTION,
        **outcome,
    }
    with contextlib.suppress(DuplicateKeyError):
        await db[ATTEMPTS].insert_one(doc)


async def list_attempts(
    db: AsyncDatabase, account_id: str, delivery_id_: str, limit: int = 100
) -> list[dict[str, Any]]:
    cursor = (
        db[ATTEMPTS]
        .find({"delivery_id": delivery_id_, "account_id": account_id})
        .sort([("at", ASCENDING), ("_id", ASCENDING)])
        .limit(limit)
    )
    return await cursor.to_list(length=limit)


# --- stream states ------------------------------------------------------------------------------------------------


async def get_stream_state(db: AsyncDatabase, stream_id: str) -> dict[str, Any] | None:
    return await db[STREAM_STATES].find_one({"_id": stream_id})


async def save_stream_state(
    db: AsyncDatabase, stream_id: str, *, version: int, status: str, event_id: str, previous_status: str | None
) -> bool:
    """Keep this version's status if it is newer than the one held; False if it was stale."""
    try:
        await db[STREAM_STATES].update_one(
            {"_id": stream_id, "version": {"$lt": version}},
            {
                "$set": {
                    "version": version,
                    "status": status,
                    "event_id": event_id,
                    "previous_status": previous_status,
                }
            },
            upsert=True,
        )
    except DuplicateKeyError:
        return False
    return True


async def erase_deliveries_naming(db: AsyncDatabase, account_id: str, needles: list[str]) -> dict[str, int]:
    """Data erasure (issue 17): drop the account's deliveries whose body names any of `needles` (an address, or the
    ids of erased messages and conversations), with their attempts (a receiver's response may echo the body).
    Re-runnable; read through each subscription's deliveries (the list index), deliveries expire in days anyway."""
    lowered = [needle.lower() for needle in needles if needle]
    if not lowered:
        return {"webhook_deliveries": 0, "webhook_attempts": 0}
    doomed: list[str] = []
    async for subscription in db[SUBSCRIPTIONS].find({"account_id": account_id}, {"_id": 1}):
        async for delivery in db[DELIVERIES].find(
            {"subscription_id": subscription["_id"], "account_id": account_id}, {"_id": 1, "body": 1}
        ):
            body = str(delivery.get("body", "")).lower()
            if any(needle in body for needle in lowered):
                doomed.append(delivery["_id"])
    attempts = 0
    for delivery_id_ in doomed:
        attempts += (
            await db[ATTEMPTS].delete_many({"delivery_id": delivery_id_, "account_id": account_id})
        ).deleted_count
    deliveries = (await db[DELIVERIES].delete_many({"_id": {"$in": doomed}})).deleted_count if doomed else 0
    return {"webhook_deliveries": deliveries, "webhook_attempts": attempts}
