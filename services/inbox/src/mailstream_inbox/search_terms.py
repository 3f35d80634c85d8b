"""Conversation search, the pure part: which terms a conversation is found by, what `q` asks, and why it matched.

A term is a normalised word (Unicode NFKC, case-folded, runs of letters, digits and `_`) or a whole e-mail
address; at most `MAX_TERM_CHARS` long. A conversation keeps the terms of its subject and customer and of the
subject and the start of each message (`conversations.terms`, a multikey index per account). `q` matches a
conversation when every one of its words is a prefix of one of the conversation's terms ("parc 12" finds
"Parcel 1234"); a word inside a term ("rcel") does not match.
"""

import re
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any

MAX_TERM_CHARS = 64
MAX_QUERY_TERMS = 8  # `q` is at most 200 characters; more words than this narrow nothing a user notices
_WORD = re.compile(r"\w+")
_ADDRESS = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")


def _normalise(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


def terms_of(*texts: str | None, limit: int | None = None) -> list[str]:
    """The distinct terms of `texts`, in order of appearance (at most `limit`)."""
    found: dict[str, None] = {}
    for text in texts:
        if not text:
            continue
        normalised = _normalise(text)
        for term in [*_ADDRESS.findall(normalised), *_WORD.findall(normalised)]:
            found.setdefault(term[:MAX_TERM_CHARS], None)
    terms = list(found)
    return terms if limit is None else terms[:limit]


def query_terms(q: str | None) -> list[str]:
    """The words of `q` that every match must have (as term prefixes); [] for no search.

    A word that is a prefix of another word of `q` adds nothing, so it is dropped."""
    words = terms_of(q)
    kept = [w for w in words if not any(o != w and o.startswith(w) for o in words)]
    return kept[:MAX_QUERY_TERMS]


def prefix_pattern(term: str) -> str:
    """An anchored, literal regex: the index serves it as a range scan."""
    return "^" + re.escape(term)


def match_reason(conversation: Mapping[str, Any], words: Iterable[str]) -> list[dict[str, str]]:
    """For each query word, where the conversation has it: its `subject`, its `customer`, else a `message`."""
    customer = conversation.get("customer") or {}
    fields = {
        "subject": terms_of(conversation.get("subject")),
        "customer": terms_of(customer.get("name"), customer.get("address")),
    }
    reasons = []
    for word in words:
        field = next((f for f, terms in fields.items() if any(t.startswith(word) for t in terms)), "message")
        reasons.append({"term": word, "field": field})
    return reasons
