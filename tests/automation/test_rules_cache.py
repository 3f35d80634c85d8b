"""The per-process rules cache: rules are served only under the revision they were loaded with; LRU bound."""

from datetime import UTC, datetime

from mailstream_automation.rules import StoredRule
from mailstream_automation.rules_cache import RulesCache

NOW = datetime(2025, 1, 1, tzinfo=UTC)


def stored(name: str) -> StoredRule:
    return StoredRule.model_validate(
        {
            "id": name,
            "account_id": "acct",
            "position": 0,
            "created_at": NOW,
            "updated_at": NOW,
            "name": name,
            "actions": [{"type": "add_tags", "tags": [name]}],
        }
    )


def test_rules_are_served_only_under_the_revision_they_were_loaded_with():
    cache = RulesCache(max_accounts=10)
    assert cache.lookup("a", "r1") is None
    cache.store("a", "r1", [stored("x")])
    assert cache.lookup("a", "r1") == (stored("x"),)
    assert cache.lookup("a", "r2") is None  # a rule was written since
    assert cache.lookup("b", "r1") is None  # another account's rules are never served
    cache.store("a", "r2", [])
    assert cache.lookup("a", "r2") == ()  # no rules is an answer too, not a miss
    assert cache.lookup("a", "r1") is None


def test_an_account_without_a_revision_document_is_cached_until_its_first_write():
    cache = RulesCache(max_accounts=10)
    cache.store("a", None, [stored("x")])
    assert cache.lookup("a", None) == (stored("x"),)
    assert cache.lookup("a", "first-write") is None


def test_the_least_recently_used_account_leaves_first():
    cache = RulesCache(max_accounts=2)
    cache.store("a", "r", [stored("a")])
    cache.store("b", "r", [stored("b")])
    assert cache.lookup("a", "r") is not None  # a is now the most recently used
    cache.store("c", "r", [stored("c")])
    assert len(cache) == 2
    assert cache.lookup("b", "r") is None
    assert cache.lookup("a", "r") is not None and cache.lookup("c", "r") is not None


def test_a_cache_of_size_zero_keeps_nothing():
    cache = RulesCache(max_accounts=0)
    cache.store("a", "r", [stored("a")])
    assert cache.lookup("a", "r") is None and len(cache) == 0
