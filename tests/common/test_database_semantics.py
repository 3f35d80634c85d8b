"""Every database behaviour the services rely on, pinned against whatever server `MONGODB_URI` names.

Run it against your own MongoDB (a replica set, a standalone, Atlas) before trusting Mailstream on it (it never
uses the broker; the shared fixture only wants some AMQP_URL):

    MONGODB_URI=mongodb://host:27017/ AMQP_URL=amqp://unused.invalid/ \
        uv run --frozen pytest tests/common/test_database_semantics.py

Everything happens in a scratch database of its own, dropped afterwards. The rules are those that
`mailstream_common.mongo`'s docstring lists; each test names the code that leans on it. The `explain` checks take
each service's own index definitions (`INDEXES`) and the query shapes of `HOT_QUERIES` below, so a changed index
that stops serving a hot query fails here.
"""

import asyncio
import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import ASCENDING, DESCENDING, IndexModel, ReturnDocument
from pymongo.errors import DuplicateKeyError, OperationFailure

from mailstream_common import mongo
from mailstream_common.settings import CommonSettings
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

WRITERS = 8


async def _server_is_secantus(db) -> bool:
    return "secantusVersion" in await db.client.admin.command("buildInfo")


# --- single-document atomicity ------------------------------------------------------------------------------------


async def test_a_guarded_update_one_has_exactly_one_winner_among_8_concurrent_writers(mongo_db):
    """The state-guard pattern (`begin_attempt`, rule claims, delivery status moves): the filter carries the
    expected state, so of several writers racing for the same transition exactly one matches."""
    rounds = 25  # many rounds: a lost race shows only when the writes really interleave
    await mongo_db.jobs.insert_many([{"_id": r, "state": "queued", "version": 0} for r in range(rounds)])

    async def take(job: int, writer: int) -> int:
        result = await mongo_db.jobs.update_one(
            {"_id": job, "state": "queued", "version": 0},
            {"$set": {"state": "taken", "by": writer}, "$inc": {"version": 1}},
        )
        return result.modified_count

    for job in range(rounds):
        wins = await asyncio.gather(*(take(job, w) for w in range(WRITERS)))
        assert sum(wins) == 1, f"round {job}: {sum(wins)} writers won the same transition"
        stored = await mongo_db.jobs.find_one({"_id": job})
        assert stored["version"] == 1 and stored["by"] == wins.index(1)


async def test_find_one_and_update_inc_200_concurrent_counts_200_and_hands_out_each_value_once(mongo_db):
    """A counter or claim read back from the same atomic write: no two callers see the same value."""
    await mongo_db.counters.insert_one({"_id": "c", "n": 0})

    async def bump() -> int:
        doc = await mongo_db.counters.find_one_and_update(
            {"_id": "c"}, {"$inc": {"n": 1}}, return_document=ReturnDocument.AFTER
        )
        return doc["n"]

    seen = await asyncio.gather(*(bump() for _ in range(200)))
    assert sorted(seen) == list(range(1, 201))
    assert (await mongo_db.counters.find_one({"_id": "c"}))["n"] == 200


async def test_concurrent_sets_of_different_fields_of_one_document_are_both_kept(mongo_db):
    """Two consumers updating different fields of one conversation (status by an agent, counters by a delivery)."""
    rounds = 100
    await mongo_db.docs.insert_many([{"_id": r} for r in range(rounds)])
    for r in range(rounds):
        await asyncio.gather(
            mongo_db.docs.update_one({"_id": r}, {"$set": {"status": "closed"}}),
            mongo_db.docs.update_one({"_id": r}, {"$set": {"last_message_at": r}}),
        )
    lost = await mongo_db.docs.count_documents({"$or": [{"status": {"$exists": False}}, {"last_message_at": None}]})
    assert lost == 0, f"{lost}/{rounds} documents lost one of two concurrent $sets"


async def test_concurrent_push_and_add_to_set_lose_nothing(mongo_db):
    """Appending message ids to a conversation from concurrent deliveries; `$addToSet` as the redelivery guard."""
    await mongo_db.threads.insert_one({"_id": "t", "ids": [], "tags": []})
    await asyncio.gather(
        *(mongo_db.threads.update_one({"_id": "t"}, {"$push": {"ids": i}}) for i in range(200)),
        *(mongo_db.threads.update_one({"_id": "t"}, {"$addToSet": {"tags": i % 20}}) for i in range(200)),
    )
    stored = await mongo_db.threads.find_one({"_id": "t"})
    assert sorted(stored["ids"]) == list(range(200))
    assert sorted(stored["tags"]) == list(range(20))


async def test_a_push_guarded_by_not_in_the_array_counts_each_item_once(mongo_db):
    """The idempotent counter of a conversation: append the id and count it in one update, guarded by
    "not appended yet", so a redelivered mail (here: each id 8 times at once) never counts twice."""
    await mongo_db.threads.insert_one({"_id": "t", "ids": [], "count": 0})

    async def deliver(message: int) -> None:
        await mongo_db.threads.update_one(
            {"_id": "t", "ids": {"$ne": message}}, {"$push": {"ids": message}, "$inc": {"count": 1}}
        )

    await asyncio.gather(*(deliver(m) for m in range(25) for _ in range(WRITERS)))
    stored = await mongo_db.threads.find_one({"_id": "t"})
    assert stored["count"] == 25 and sorted(stored["ids"]) == list(range(25))


# --- unique indexes and upserts -----------------------------------------------------------------------------------


async def test_a_unique_index_violation_is_duplicate_key_error_code_11000(mongo_db):
    """`insert_once`, the write of every idempotent consumer, tells "already there" by this error."""
    await mongo_db.things.create_index([("stream_id", ASCENDING), ("key", ASCENDING)], unique=True)
    await mongo_db.things.insert_one({"stream_id": "s", "key": "k"})
    with pytest.raises(DuplicateKeyError) as caught:
        await mongo_db.things.insert_one({"stream_id": "s", "key": "k"})
    assert caught.value.code == 11000
    await mongo_db.things.insert_one({"stream_id": "s", "key": "other"})  # only the same key collides


async def test_insert_once_under_8_concurrent_writers_stores_one_and_all_read_it(mongo_db):
    await mongo_db.things.create_index([("key", ASCENDING)], unique=True)
    results = await asyncio.gather(
        *(mongo.insert_once(mongo_db.things, {"key": "k", "writer": w}, {"key": "k"}) for w in range(WRITERS))
    )
    created = [doc["writer"] for doc, was_created in results if was_created]
    assert len(created) == 1
    assert {doc["writer"] for doc, _ in results} == set(created)  # the losers read the winner's document
    assert await mongo_db.things.count_documents({}) == 1


async def test_a_guarded_upsert_racing_has_one_winner_and_the_losers_collide(mongo_db):
    """`claim_auto_reply`: upsert guarded by `last_at < cutoff`. Where the slot is taken the filter misses, the
    upsert's insert collides on `_id`, and that DuplicateKeyError is the loser's answer."""
    now = datetime.now(UTC)
    interval = timedelta(hours=1)

    async def claim(message: str, at: datetime) -> bool:
        try:
            await mongo_db.claims.update_one(
                {"_id": "rule:customer", "last_at": {"$lt": at - interval}},
                {"$set": {"last_at": at, "message_id": message}},
                upsert=True,
            )
        except DuplicateKeyError:
            return False
        return True

    won = await asyncio.gather(*(claim(f"m{w}", now) for w in range(WRITERS)))
    assert sum(won) == 1, f"{sum(won)} concurrent claimers of one empty slot won"
    stored = await mongo_db.claims.find_one({"_id": "rule:customer"})
    assert stored["message_id"] == f"m{won.index(True)}"
    assert await mongo_db.claims.count_documents({}) == 1

    # Once the interval has passed the guard matches the existing document: again exactly one winner.
    later = now + 2 * interval
    won = await asyncio.gather(*(claim(f"n{w}", later) for w in range(WRITERS)))
    assert sum(won) == 1
    assert (await mongo_db.claims.find_one({"_id": "rule:customer"}))["message_id"] == f"n{won.index(True)}"


async def test_a_partial_unique_index_allows_duplicates_outside_its_filter(mongo_db):
    await mongo_db.keys.create_index(
        [("domain_id", ASCENDING)], unique=True, partialFilterExpression={"state": "active"}, name="one_active"
    )
    await mongo_db.keys.insert_many([{"domain_id": "d", "state": "retired"} for _ in range(3)])
    await mongo_db.keys.insert_one({"domain_id": "d", "state": "active"})
    with pytest.raises(DuplicateKeyError):
        await mongo_db.keys.insert_one({"domain_id": "d", "state": "active"})
    # A query that implies the filter may use the (smaller) index; one that does not, may not.
    assert "IXSCAN" in _stages(await mongo_db.keys.find({"domain_id": "d", "state": "active"}).explain())
    assert "COLLSCAN" in _stages(await mongo_db.keys.find({"domain_id": "d"}).explain())


# --- TTL ----------------------------------------------------------------------------------------------------------


async def test_a_ttl_index_deletes_expired_documents_and_only_those(mongo_db):
    """Retention by TTL index. The server's TTL monitor runs periodically (MongoDB: every 60 s by default,
    `ttlMonitorSleepSecs`; SecantusDB: `[storage] ttl_sweep_seconds`, 60 s unless configured), so this waits for
    the deletion, bounded by two periods."""
    await mongo_db.events.create_index([("expires_at", ASCENDING)], expireAfterSeconds=0, name="expiry")
    past, future = datetime.now(UTC) - timedelta(minutes=5), datetime.now(UTC) + timedelta(days=1)
    await mongo_db.events.insert_many(
        [
            {"_id": "expired", "expires_at": past},
            {"_id": "expired-too", "expires_at": past},
            {"_id": "not-yet", "expires_at": future},
            {"_id": "no-expiry"},  # no date in the indexed field: never expires
            {"_id": "not-a-date", "expires_at": "yesterday"},
        ]
    )

    async def expired_gone() -> bool:
        return await mongo_db.events.count_documents({"_id": {"$in": ["expired", "expired-too"]}}) == 0

    await wait_for(expired_gone, timeout=130, interval=1, what="the TTL monitor to delete the expired documents")
    remaining = sorted([doc["_id"] async for doc in mongo_db.events.find({}, {"_id": 1})])
    assert remaining == ["no-expiry", "not-a-date", "not-yet"]


# --- index creation -----------------------------------------------------------------------------------------------


async def test_one_create_indexes_call_names_several_indexes_some_of_which_exist(mongo_db):
    """`mongo.ensure_indexes` makes one createIndexes call per collection, at every start of every replica."""
    first = [IndexModel([("a", ASCENDING)], unique=True, name="a"), IndexModel([("b", ASCENDING)], name="b")]
    more = [
        *first,
        IndexModel([("c", ASCENDING), ("d", DESCENDING)], name="c_d"),
        IndexModel([("e", ASCENDING)], name="e_ttl", expireAfterSeconds=3600),
        IndexModel([("f", ASCENDING)], name="f_partial", partialFilterExpression={"g": True}),
    ]
    await mongo.ensure_indexes(mongo_db, {"things": first})
    await mongo.ensure_indexes(mongo_db, {"things": more, "others": more})
    await mongo.ensure_indexes(mongo_db, {"things": more, "others": more})  # all exist: a no-op, not an error
    for collection in ("things", "others"):
        info = await mongo_db[collection].index_information()
        assert set(info) == {"_id_", "a", "b", "c_d", "e_ttl", "f_partial"}
        assert info["a"].get("unique") and info["e_ttl"]["expireAfterSeconds"] == 3600
        assert info["f_partial"]["partialFilterExpression"] == {"g": True}


async def test_an_index_redefined_under_the_same_name_fails_loudly(mongo_db):
    await mongo.ensure_indexes(mongo_db, {"things": [IndexModel([("a", ASCENDING)], name="a")]})
    with pytest.raises(OperationFailure):
        await mongo.ensure_indexes(mongo_db, {"things": [IndexModel([("a", ASCENDING)], name="a", unique=True)]})


# --- write concern ------------------------------------------------------------------------------------------------


async def test_the_durable_write_concern_is_accepted_by_this_server(backends, mongo_db):
    """`create_client` applies w="majority", j=true to every write (settings MONGODB_WRITE_CONCERN_W/_J). On a
    replica set (SecantusDB advertises itself as a one-node set) and on a standalone mongod alike, a write with it
    must be acknowledged without a write-concern error."""
    settings = CommonSettings(MONGODB_WRITE_CONCERN_W="majority", MONGODB_WRITE_CONCERN_J=True)
    client = mongo.create_client(backends.mongodb_uri, app_name="semantics", settings=settings)
    try:
        assert client.write_concern.document == {"w": "majority", "j": True}
        things = client[mongo_db.name].things
        await things.insert_one({"_id": 1, "n": 0})
        await things.update_one({"_id": 1}, {"$inc": {"n": 1}})
        assert (await things.find_one_and_update({"_id": 1}, {"$inc": {"n": 1}}, return_document=True))["n"] == 2
        await things.delete_one({"_id": 1})
    finally:
        await client.close()


async def test_an_unsatisfiable_write_concern_is_reported_not_ignored(backends, mongo_db):
    """The server checks write concerns: asking for 50 nodes fails. (A server that ignored write concerns would
    make the test above prove nothing.)"""
    settings = CommonSettings(MONGODB_WRITE_CONCERN_W="50", MONGODB_WRITE_CONCERN_J=True)
    client = mongo.create_client(backends.mongodb_uri, app_name="semantics", settings=settings)
    try:
        assert client.write_concern.document == {"w": 50, "j": True}
        with pytest.raises(OperationFailure):  # WriteConcernError on a replica set, BadValue on a standalone
            await client[mongo_db.name].things.insert_one({"_id": 1})
    finally:
        await client.close()


async def test_the_write_concern_settings_default_to_majority_and_journal(monkeypatch):
    monkeypatch.delenv("MONGODB_WRITE_CONCERN_W", raising=False)
    monkeypatch.delenv("MONGODB_WRITE_CONCERN_J", raising=False)
    assert mongo.write_concern(CommonSettings()).document == {"w": "majority", "j": True}
    # Services call create_client without settings: it reads the environment, and wins over the URI's options.
    monkeypatch.setenv("MONGODB_WRITE_CONCERN_W", "1")
    monkeypatch.setenv("MONGODB_WRITE_CONCERN_J", "false")
    client = mongo.create_client("mongodb://127.0.0.1:1/?w=2&journal=true", app_name="settings-only")
    try:
        assert client.write_concern.document == {"w": 1, "j": False}
    finally:
        await client.close()


async def test_a_pooled_connection_idle_past_the_limit_is_replaced_not_reused(backends):
    """Any idle cut-off between a service and the database (a cloud load balancer, SecantusDB's 300 s) closes
    connections the pool still holds; the first write on one would fail. The client retires them first."""
    settings = CommonSettings.model_validate({"MONGODB_MAX_IDLE_SECONDS": 0.3})
    client = mongo.create_client(backends.mongodb_uri, app_name="idle-limit", settings=settings)
    try:
        first = (await client.admin.command("hello"))["connectionId"]
        assert (await client.admin.command("hello"))["connectionId"] == first  # reused while fresh
        await asyncio.sleep(0.6)  # the idleness under test, not a wait for something to happen
        assert (await client.admin.command("hello"))["connectionId"] != first
    finally:
        await client.close()


# --- explain of each hot query ------------------------------------------------------------------------------------


def _inbox_indexes() -> Mapping[str, list[IndexModel]]:
    return importlib.import_module("mailstream_inbox.repositories").INDEXES


def _module_indexes(module: str):
    return lambda: importlib.import_module(module).INDEXES


# Where each service declares its indexes (the same definitions its start-up creates).
SERVICE_INDEXES = {
    "inbox": _inbox_indexes,
    "automation": _module_indexes("mailstream_automation.repositories"),
    "domains": _module_indexes("mailstream_domains.repositories"),
    "sender": _module_indexes("mailstream_sender.repositories"),
    "ingest": _module_indexes("mailstream_ingest.repositories"),
    "webhooks": _module_indexes("mailstream_inbox.webhooks.repositories"),
}

NEWEST_FIRST = [("last_message_at", DESCENDING), ("_id", DESCENDING)]
OLDEST_FIRST = [("created_at", ASCENDING), ("_id", ASCENDING)]


@dataclass(frozen=True)
class HotQuery:
    """A query shape a service runs on a hot path: it must be an index scan (IXSCAN), never a COLLSCAN.
    `sorted_by_index`: the index also yields the order, so a page costs its `limit`, not the whole match."""

    service: str
    collection: str
    filter: dict[str, Any]
    sort: list[tuple[str, int]] = field(default_factory=list)
    limit: int = 0
    sorted_by_index: bool = False
    secantus_scans: bool = False  # SecantusDB 0.7.0b3 plans it as a COLLSCAN (see SECANTUS_SCANS)


# Measured on SecantusDB 0.7.0b3: its planner uses an index only when every field of the filter is in the index's
# leading prefix (equality, or one range operator last); a further field (`deleted: False`, `revoked: False`) or an
# `$in` makes it scan the collection. MongoDB uses the index and filters the rest after the fetch. So these rows
# pass on MongoDB and are expected failures on SecantusDB, where they cost a collection scan.
SECANTUS_SCANS = "SecantusDB 0.7.0b3 scans when a filter field is outside the index prefix, or for $in"


# The table. Values are placeholders: only the shape (fields, operators, sort) matters to the planner.
HOT_QUERIES: dict[str, HotQuery] = {
    # inbox: the gateway's lists and the delivery consumer's writes
    "conversation list, by account": HotQuery(
        "inbox", "conversations", {"account_id": "a"}, NEWEST_FIRST, 51, sorted_by_index=True
    ),
    "conversation list, by account + status": HotQuery(
        "inbox", "conversations", {"account_id": "a", "status": "open"}, NEWEST_FIRST, 51, sorted_by_index=True
    ),
    "conversation list, by account + stream": HotQuery(
        "inbox", "conversations", {"account_id": "a", "stream_id": "s"}, NEWEST_FIRST, 51, sorted_by_index=True
    ),
    "conversation list, by account + topic": HotQuery(
        "inbox", "conversations", {"account_id": "a", "topic_id": "t"}, NEWEST_FIRST, 51, sorted_by_index=True
    ),
    "conversation list, by account + tag": HotQuery(
        "inbox", "conversations", {"account_id": "a", "tags": "vip"}, NEWEST_FIRST, 51
    ),
    "conversation list, by account + assignee": HotQuery(
        "inbox", "conversations", {"account_id": "a", "assignee": "u"}, NEWEST_FIRST, 51, sorted_by_index=True
    ),
    "conversation of a first mail (stream + origin key)": HotQuery(
        "inbox", "conversations", {"stream_id": "s", "origin_key": "k"}
    ),
    "messages of a conversation, in order": HotQuery(
        "inbox", "messages", {"conversation_id": "c"}, OLDEST_FIRST, 51, sorted_by_index=True
    ),
    "message by its dedup key (stream + Message-ID)": HotQuery(
        "inbox", "messages", {"stream_id": "s", "dedup_key": "<id@x>"}
    ),
    "stream route by forwarding address (ingest's RCPT TO, its own projection)": HotQuery(
        "ingest", "stream_routes", {"forwarding_address": "s-x@in.test"}
    ),
    "stream list of an account": HotQuery(
        "inbox", "streams", {"account_id": "a", "deleted": False}, OLDEST_FIRST, 51, sorted_by_index=True
    ),
    "API key by hash (every request)": HotQuery(
        "inbox", "api_keys", {"key_hash": "h", "revoked": False}, secantus_scans=True
    ),
    "live events replay after Last-Event-ID": HotQuery(
        "inbox", "live_events", {"account_id": "a", "key": {"$gt": "k"}}, [("key", ASCENDING)], sorted_by_index=True
    ),
    "an upload's chunks, in order": HotQuery(
        "inbox", "upload_chunks", {"upload_id": "u"}, [("n", ASCENDING)], sorted_by_index=True
    ),
    # automation: the rules of every message, and the idempotency of runs
    "enabled rules of an account": HotQuery(
        "automation",
        "automation_rules",
        {"account_id": "a", "enabled": True},
        [("position", ASCENDING), ("created_at", ASCENDING), ("_id", ASCENDING)],
        secantus_scans=True,
    ),
    "runs of a message": HotQuery("automation", "automation_runs", {"account_id": "a", "message_id": "m"}),
    "run history of an account": HotQuery(
        "automation",
        "automation_runs",
        {"account_id": "a"},
        [("at", DESCENDING), ("_id", DESCENDING)],
        51,
        sorted_by_index=True,
    ),
    # domains: the API's list and the re-check scheduler
    "domains of an account": HotQuery(
        "domains", "domains", {"account_id": "a"}, [("name", ASCENDING)], 51, sorted_by_index=True
    ),
    "domains due for a check": HotQuery(
        "domains", "domains", {"next_check_at": {"$lte": datetime(2026, 1, 1, tzinfo=UTC)}}, [("next_check_at", 1)], 50
    ),
    "live keys of a domain": HotQuery(
        "domains",
        "domain_keys",
        {"domain_id": "d", "state": {"$in": ["pending", "active", "retiring"]}},
        secantus_scans=True,
    ),
    # sender: the suppression check of every reply
    "suppressed recipients of a reply": HotQuery(
        "sender",
        "sender_suppressions",
        {"account_id": "a", "address": {"$in": ["x@y.z"]}, "suppressed": True},
        secantus_scans=True,
    ),
    # inbox: dead letters, listed by an account's admins and by the operator, and a letter's body
    "dead letters of an account": HotQuery(
        "inbox",
        "dead_letters",
        {"account_id": "a", "state": "dead"},
        [("dead_at", DESCENDING), ("_id", DESCENDING)],
        51,
        sorted_by_index=True,
    ),
    "dead letters of an account's queue": HotQuery(
        "inbox",
        "dead_letters",
        {"account_id": "a", "state": "dead", "queue": "q"},
        [("dead_at", DESCENDING), ("_id", DESCENDING)],
        51,
        sorted_by_index=True,
    ),
    "dead letters of a queue (operator)": HotQuery(
        "inbox",
        "dead_letters",
        {"state": "dead", "queue": "q"},
        [("dead_at", DESCENDING), ("_id", DESCENDING)],
        51,
        sorted_by_index=True,
    ),
    "a dead letter's body, in order": HotQuery(
        "inbox", "dead_letter_bodies", {"letter_id": "l"}, [("n", ASCENDING)], sorted_by_index=True
    ),
    # webhooks: the dispatcher's lookup for every fact, and the subscription, delivery and attempt lists
    "webhook subscriptions matching an event": HotQuery(
        "webhooks", "webhook_subscriptions", {"account_id": "a", "event_types": "message.received", "enabled": True}
    ),
    "webhook subscriptions of an account": HotQuery(
        "webhooks", "webhook_subscriptions", {"account_id": "a"}, OLDEST_FIRST, 51, sorted_by_index=True
    ),
    "webhook deliveries of a subscription": HotQuery(
        "webhooks",
        "webhook_deliveries",
        {"subscription_id": "w", "account_id": "a"},
        [("created_at", DESCENDING), ("_id", DESCENDING)],
        51,
        sorted_by_index=True,
    ),
    "webhook attempts of a delivery": HotQuery(
        "webhooks",
        "webhook_attempts",
        {"delivery_id": "d", "account_id": "a"},
        [("at", ASCENDING), ("_id", ASCENDING)],
        100,
        sorted_by_index=True,
    ),
    # data protection (issue 17): how each service finds what names a person; rare, but over a whole account
    "conversations a person took part in": HotQuery(
        "inbox", "conversations", {"account_id": "a", "participants": "x@y.z"}
    ),
    "conversations with a person as search term": HotQuery(
        "inbox", "conversations", {"account_id": "a", "terms": "x@y.z"}
    ),
    "messages still using a blob": HotQuery("inbox", "messages", {"raw_blob_id": "0" * 64}),
    "messages still using an attachment blob": HotQuery("inbox", "messages", {"attachments.sha256": "0" * 64}),
    "data requests of an account": HotQuery(
        "inbox", "data_requests", {"account_id": "a"}, [("created_at", DESCENDING), ("_id", DESCENDING)], 51
    ),
    "deliveries to a person": HotQuery("sender", "sender_deliveries", {"account_id": "a", "recipients": "x@y.z"}),
    "runs about a person": HotQuery("automation", "automation_runs", {"account_id": "a", "customer": "x@y.z"}),
}


def _stages(explained: Mapping[str, Any]) -> list[str]:
    """Every stage name of the winning plan (both the classic and the SBE explain shapes)."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, Mapping):
            if isinstance(node.get("stage"), str):
                found.append(node["stage"])
            for key, value in node.items():
                if key != "rejectedPlans":
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(explained["queryPlanner"]["winningPlan"])
    return found


def _index_scanned(stages: list[str]) -> bool:
    # IXSCAN, MongoDB 8's EXPRESS_IXSCAN, and IDHACK (an _id lookup) all read through an index.
    return "COLLSCAN" not in stages and any("IXSCAN" in s or "IDHACK" in s for s in stages)


def _hot_query_cases() -> list[Any]:
    return [pytest.param(query, id=what) for what, query in HOT_QUERIES.items()]


async def _explain(mongo_db, query: HotQuery) -> dict[str, Any]:
    indexes = SERVICE_INDEXES[query.service]()
    assert query.collection in indexes, f"{query.service} declares no indexes for {query.collection!r}"
    await mongo.ensure_indexes(mongo_db, indexes)
    # A few documents, so that the planner has a collection to plan over; each indexed field gets distinct values
    # (unique indexes would reject a second document without it).
    fields = {key for model in indexes[query.collection] for key, _ in model.document["key"].items() if "." not in key}
    fields.discard("_id")
    await mongo_db[query.collection].insert_many([{f: f"{f}-{i}" for f in fields} for i in range(10)])
    cursor = mongo_db[query.collection].find(query.filter)
    if query.sort:
        cursor = cursor.sort(query.sort)
    if query.limit:
        cursor = cursor.limit(query.limit)
    return await cursor.explain()


@pytest.mark.parametrize("query", _hot_query_cases())
async def test_each_hot_query_is_an_index_scan(mongo_db, request, query: HotQuery):
    if query.secantus_scans and await _server_is_secantus(mongo_db):
        request.applymarker(pytest.mark.xfail(reason=SECANTUS_SCANS))
    stages = _stages(await _explain(mongo_db, query))
    assert _index_scanned(stages), f"{query.service}: {query.collection} {query.filter} plans as {stages}"


@pytest.mark.parametrize("query", [p for p in _hot_query_cases() if p.values[0].sorted_by_index])
async def test_each_hot_list_is_sorted_by_its_index(mongo_db, request, query: HotQuery):
    if await _server_is_secantus(mongo_db):
        # Measured on SecantusDB 0.7.0b3: its planner takes the order from an index only when the sort field is
        # the index's leading field, so an equality prefix + sort plans as IXSCAN + blocking SORT. A SecantusDB
        # limit, not MongoDB's: on MongoDB these must pass. Not strict: the day SecantusDB learns it, XPASS says so.
        request.applymarker(pytest.mark.xfail(reason="SecantusDB sorts after an equality prefix in memory"))
    stages = _stages(await _explain(mongo_db, query))
    assert _index_scanned(stages) and "SORT" not in stages, f"{query.collection} {query.filter}: {stages}"


async def test_the_explain_check_sees_a_collection_scan(mongo_db):
    """The check above can fail: a query no index serves is reported as a COLLSCAN."""
    await mongo.ensure_indexes(mongo_db, SERVICE_INDEXES["inbox"]())
    await mongo_db.conversations.insert_one({"n": 1})
    stages = _stages(await mongo_db.conversations.find({"subject": "x"}).explain())
    assert not _index_scanned(stages) and "COLLSCAN" in stages
