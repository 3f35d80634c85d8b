"""The only code that talks to MongoDB: one module per collection, and the indexes start-up ensures.

Concurrency is MongoDB's single-document atomicity: a record is created by an insert on its unique `_id`, and every
later state change is a conditional update. Retention is a TTL index on `expires_at`.
"""

from pymongo import ASCENDING, IndexModel

from . import erasure
from .deliveries import DELIVERIES
from .mails import MAILS
from .stream_settings import COLLECTION as STREAM_SETTINGS
from .suppressions import SUPPRESSIONS

INDEXES = {
    DELIVERIES: [
        IndexModel([("account_id", ASCENDING)]),
        # Only final records have an expiry: records still in work stay out of the index.
        IndexModel(
            [("expires_at", ASCENDING)],
            expireAfterSeconds=0,
            partialFilterExpression={"expires_at": {"$exists": True}},
            name="deliveries_expiry",
        ),
    ],
    MAILS: [IndexModel([("expires_at", ASCENDING)], expireAfterSeconds=0, name="mails_expiry")],
    SUPPRESSIONS: [IndexModel([("account_id", ASCENDING), ("address", ASCENDING)], unique=True)],
}
for _collection, _models in erasure.INDEXES.items():
    INDEXES[_collection] = [*INDEXES[_collection], *_models]

__all__ = ["DELIVERIES", "INDEXES", "MAILS", "STREAM_SETTINGS", "SUPPRESSIONS"]
