"""The domains service's MongoDB access: `domains` (one aggregate with its `domain_keys`) and their indexes."""

from pymongo import ASCENDING, IndexModel

from .domains import DOMAIN_KEYS, DOMAINS

INDEXES: dict[str, list[IndexModel]] = {
    DOMAINS: [
        IndexModel([("account_id", ASCENDING), ("name", ASCENDING)], unique=True),
        IndexModel([("next_check_at", ASCENDING)]),
    ],
    DOMAIN_KEYS: [
        IndexModel([("domain_id", ASCENDING), ("selector", ASCENDING)], unique=True),
        IndexModel([("account_id", ASCENDING), ("domain_id", ASCENDING), ("state", ASCENDING)]),
        # At most one key waits for its record per domain: a second concurrent rotation fails on this index.
        IndexModel(
            [("domain_id", ASCENDING)],
            unique=True,
            partialFilterExpression={"state": "pending"},
            name="one_pending_key_per_domain",
        ),
    ],
}
