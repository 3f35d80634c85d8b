"""Which conversation an inbound mail belongs to. Pure: the store consumer fetches candidates, this decides.

The rules, in order (threading is the first complaint users of Chatwoot and Zammad have, so each rule says why):

1. References first. The mail's In-Reply-To and References are looked up among the *thread keys* of the stream's
   conversations: the Message-IDs of every message stored in a conversation, inbound and our own outbound replies.
   A match wins, whatever the subject says, so a reply whose In-Reply-To was mangled but whose References still
   name our message threads correctly, and a customer who answers an old mail with an edited subject to raise a new
   topic stays in that old conversation (agents keep the history; the message shows its own new subject). The
   mail's *own* references are never added as keys: only ids of messages we hold. That is what keeps the replies of
   different people to one newsletter (which all reference the newsletter's id) from merging. The reason says
   which header matched: `in_reply_to`, else `references`.
2. Otherwise the conversation token (`reply_tokens.py`): our outbound Message-ID and Reply-To carry a token of
   the conversation; a mail that names one (in its To/Cc/envelope or its reference headers) joins that
   conversation of the *same stream*: an Outlook reply whose References are gone still threads. Reason
   `reply_token`.
3. Otherwise the subject fallback: when the mail looks like a reply (a Re:/Fwd:/AW:/返信: ... prefix, or reply
   headers that matched nothing, e.g. a provider that rewrote our outbound Message-ID), the most recent
   conversation of the *same customer* (or of a conversation whose participants include the sender: a Cc'd
   colleague) on the *same stream* with the same normalised subject, active within `window` (14 days by default),
   is used. Same customer or participant is what keeps a newsletter's repliers apart here too. Reason
   `subject_and_sender`.
4. Otherwise a new conversation (reason `new`).
"""

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

DEFAULT_SUBJECT_WINDOW = timedelta(days=14)

_PREFIX_WORDS = (
    "re",
    "fw",
    "fwd",
    "aw",  # German Antwort
    "wg",  # German Weitergeleitet
    "sv",  # Nordic svar
    "vs",  # Finnish vastaus
    "antw",  # Dutch
    "doorst",  # Dutch doorgestuurd
    "tr",  # French transféré
    "rv",  # Spanish reenviado
    "enc",  # Portuguese encaminhado
    "ref",
    "odp",  # Polish
    "返信",
    "転送",
    "回复",
    "回覆",
    "答复",
    "转发",
    "轉寄",
    "답장",
    "전달",
)


def _fullwidth(word: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in word)


_WORD_ALTERNATIVES = "|".join(
    sorted({re.escape(w) for word in _PREFIX_WORDS for w in (word, _fullwidth(word))}, key=len, reverse=True)
)
# "Re:", "RE :", "Re[2]:", "Re(2):", "Re：" (full-width colon), "Ｒｅ：", and leading list tags are not touched.
_PREFIX = re.compile(rf"^\s*(?:{_WORD_ALTERNATIVES})\s*(?:[\[(（［]\s*\d+\s*[\])）］])?\s*[:：]\s*", re.IGNORECASE)
_SPACES = re.compile(r"\s+")


def strip_reply_prefixes(subject: str) -> tuple[str, bool]:
    """The subject without any stack of reply/forward prefixes (case kept), and whether there was one."""
    stripped = subject or ""
    found = False
    while True:
        match = _PREFIX.match(stripped)
        if not match or match.end() == 0:
            break
        stripped = stripped[match.end() :]
        found = True
    return stripped.strip(), found


def normalize_subject(subject: str) -> str:
    """The subject as threading compares it: prefixes stripped, NFKC, case-folded, whitespace collapsed."""
    stripped, _ = strip_reply_prefixes(subject)
    folded = unicodedata.normalize("NFKC", stripped).casefold()
    return _SPACES.sub(" ", folded).strip()


def reply_subject(subject: str) -> str:
    """`Re: <subject>` without stacking prefixes the customer's client added."""
    stripped, _ = strip_reply_prefixes(subject)
    return f"Re: {stripped}" if stripped else "Re:"


def normalize_message_id(value: str | None) -> str | None:
    """`<id@host>` form, whitespace removed; None for an empty value. Ids are compared exactly otherwise."""
    if not value:
        return None
    cleaned = "".join(value.split())
    if not cleaned:
        return None
    if not cleaned.startswith("<"):
        cleaned = f"<{cleaned}"
    if not cleaned.endswith(">"):
        cleaned = f"{cleaned}>"
    return cleaned if len(cleaned) > 2 else None


def reference_ids(in_reply_to: Iterable[str], references: Sequence[str]) -> list[str]:
    """The ids a mail refers to, most telling first: In-Reply-To, then References from the newest (last) back."""
    ordered: list[str] = []
    for value in [*in_reply_to, *reversed(list(references))]:
        normalized = normalize_message_id(value)
        if normalized and normalized not in ordered:
            ordered.append(normalized)
    return ordered


@dataclass(frozen=True)
class ThreadCandidate:
    """A conversation as threading sees it."""

    conversation_id: str
    stream_id: str
    customer_address: str
    normalized_subject: str
    last_message_at: datetime
    thread_keys: frozenset[str] = frozenset()
    participants: frozenset[str] = frozenset()
    reply_token: str | None = None


@dataclass(frozen=True)
class InboundMail:
    """What threading needs to know about the mail being stored."""

    stream_id: str
    customer_address: str
    subject: str
    in_reply_to: tuple[str, ...]
    references: tuple[str, ...]
    received_at: datetime
    reply_tokens: tuple[str, ...] = ()


ThreadReason = Literal["in_reply_to", "references", "reply_token", "subject_and_sender", "new"]


@dataclass(frozen=True)
class ThreadDecision:
    conversation_id: str | None
    reason: ThreadReason

    @property
    def is_new(self) -> bool:
        return self.conversation_id is None


def looks_like_reply(mail: InboundMail) -> bool:
    _, had_prefix = strip_reply_prefixes(mail.subject)
    return had_prefix or bool(mail.in_reply_to) or bool(mail.references)


def choose_conversation(
    mail: InboundMail,
    referenced: Sequence[ThreadCandidate],
    same_subject: Sequence[ThreadCandidate],
    *,
    window: timedelta = DEFAULT_SUBJECT_WINDOW,
    tokened: Sequence[ThreadCandidate] = (),
) -> ThreadDecision:
    """Apply the rules of this module's docstring to candidates the repository found.

    `referenced`: conversations of the stream whose thread keys contain any of `reference_ids(mail)`.
    `same_subject`: conversations of the stream with the mail's normalised subject (any customer, any age).
    `tokened`: conversations of the stream whose reply token is one of `mail.reply_tokens`.
    """
    wanted = reference_ids(mail.in_reply_to, mail.references)
    parents = set(reference_ids(mail.in_reply_to, ()))
    in_stream = [c for c in referenced if c.stream_id == mail.stream_id]
    for message_id in wanted:
        holders = [c for c in in_stream if message_id in c.thread_keys]
        if holders:
            best = max(holders, key=lambda c: c.last_message_at)
            return ThreadDecision(best.conversation_id, "in_reply_to" if message_id in parents else "references")

    for token in mail.reply_tokens:
        holders = [c for c in tokened if c.stream_id == mail.stream_id and c.reply_token == token]
        if holders:
            return ThreadDecision(max(holders, key=lambda c: c.last_message_at).conversation_id, "reply_token")

    subject = normalize_subject(mail.subject)
    if subject and looks_like_reply(mail):
        customer = mail.customer_address.lower()
        eligible = [
            c
            for c in same_subject
            if c.stream_id == mail.stream_id
            and c.normalized_subject == subject
            and customer
            and (c.customer_address.lower() == customer or customer in c.participants)
            and abs(mail.received_at - c.last_message_at) <= window
        ]
        if eligible:
            best = max(eligible, key=lambda c: c.last_message_at)
            return ThreadDecision(best.conversation_id, "subject_and_sender")
    return ThreadDecision(None, "new")
