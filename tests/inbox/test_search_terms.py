"""Search terms, the query words and the match reason: plain functions, no database."""

import re

from mailstream_inbox import search_terms
from mailstream_inbox.repositories import conversations as conversations_repo


def test_terms_are_case_folded_words_and_whole_addresses_in_order_without_repeats():
    assert search_terms.terms_of("Re: ORDER #12.5 order", None, "Ann Müller <Ann.M+x@Example.NET>") == [
        "re",
        "order",
        "12",
        "5",
        "ann.m+x@example.net",
        "ann",
        "müller",
        "m",
        "x",
        "example",
        "net",
    ]
    assert search_terms.terms_of("ＡＢＣ１２") == ["abc12"], "NFKC: full-width letters are the ASCII ones"
    assert search_terms.terms_of("a " * 10 + "b c", limit=2) == ["a", "b"]
    assert search_terms.terms_of("x" * 100) == ["x" * search_terms.MAX_TERM_CHARS]


def test_query_words_drop_punctuation_repeats_and_words_another_word_starts_with():
    assert search_terms.query_terms(None) == [] and search_terms.query_terms("  ?! ") == []
    assert search_terms.query_terms("  Parcel   NUMBER parc ") == ["parcel", "number"]
    assert search_terms.query_terms("buyer1@EXAMPLE.net") == ["buyer1@example.net", "example", "net"]
    assert len(search_terms.query_terms(" ".join(f"w{i}" for i in range(20)))) == search_terms.MAX_QUERY_TERMS


def test_a_word_is_an_anchored_literal_prefix():
    pattern = search_terms.prefix_pattern("a.b+")
    assert re.search(pattern, "a.b+c") and not re.search(pattern, "xa.b+") and not re.search(pattern, "aab+")


def test_the_match_reason_names_the_subject_the_customer_or_a_message():
    conversation = {"subject": "Parcel late", "customer": {"name": "Kana Sato", "address": "kana@example.net"}}
    assert search_terms.match_reason(conversation, ["parc", "kana@example.net", "refund"]) == [
        {"term": "parc", "field": "subject"},
        {"term": "kana@example.net", "field": "customer"},
        {"term": "refund", "field": "message"},
    ]


def test_a_search_is_the_list_query_with_one_prefix_condition_per_word():
    listing = conversations_repo.list_query("acct", status="open", tag="vip")
    query = conversations_repo.list_query("acct", status="open", tag="vip", words=["parcel", "12"])
    assert {k: v for k, v in query.items() if k != "$and"} == listing
    assert query["$and"] == [{"terms": {"$regex": "^parcel"}}, {"terms": {"$regex": "^12"}}]
