"""The search pattern and query after the split: plain functions, no database."""

import re

from mailstream_inbox.repositories import conversation_search as search_repo
from mailstream_inbox.repositories import conversations as conversations_repo


def test_the_pattern_is_normalised_lower_cased_and_literal():
    assert search_repo.term_pattern(None) is None
    assert search_repo.term_pattern("   ") is None
    pattern = search_repo.term_pattern("  Order   #12.5 (A+B)* ")
    assert re.search(pattern, "re: order #12.5 (a+b)* please")
    assert not re.search(pattern, "order #1205 (aab)")


def test_a_search_keeps_the_list_filters_and_also_matches_legacy_terms():
    listing = conversations_repo.list_query("acct", status="open", tag="vip")
    query = conversations_repo.search_query(listing, "parcel", ["c1", "c2"])
    assert {k: v for k, v in query.items() if k != "$or"} == listing
    assert query["$or"] == [{"_id": {"$in": ["c1", "c2"]}}, {"search_terms": {"$regex": "parcel"}}]
