"""The only code of automation that talks to MongoDB: one module per collection (or aggregate), and the indexes.

Concurrency is MongoDB's single-document atomicity: a run is one insert on its derived `_id` (a duplicate finds the
first), and the auto-reply allowance is one conditional upsert on its natural key. Retention is a TTL index on
`expires_at`, which each document gets when it is written.
"""

from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase

from mailstream_common import mongo

from . import erasure
from .auto_replies import AUTO_REPLIES, AutoRepliesRepository
from .known_references import KNOWN_REFERENCES, KnownReferencesRepository
from .rules import RULE_REVISIONS, RULES, CachedRules, RulesRepository
from .runs import RUNS, RunsRepository

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
for _collection, _models in erasure.INDEXES.items():
    INDEXES[_collection] = [*INDEXES[_collection], *_models]


async def ensure_indexes(db: AsyncDatabase) -> None:
    await mongo.ensure_indexes(db, INDEXES)


__all__ = [
    "AUTO_REPLIES",
    "INDEXES",
    "KNOWN_REFERENCES",
    "RULES",
    "RULE_REVISIONS",
    "RUNS",
    "AutoRepliesRepository",
    "CachedRules",
    "KnownReferencesRepository",
    "RulesRepository",
    "RunsRepository",
    "ensure_indexes",
]
