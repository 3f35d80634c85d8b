"""What an erasure removes from inbox, and what a conversation keeps when other people remain in it (pure).

A message goes when it names the address: as its From, To, Cc or Bcc, as its conversation's customer, or as the
original sender or forwarder of a forwarded mail. Its raw bytes and attachments go with it (unless another kept
message holds the same bytes: blobs are shared by digest).

A conversation with no message left goes entirely (with its timeline). A conversation in which other people's
messages remain stays, and keeps only what those messages justify:
- `message_ids`, `message_count`, `last_message_at` and the newest inbound message are recomputed from them;
- the erased address leaves `participants`;
- if the erased person was the customer, the customer becomes the sender of the oldest remaining inbound message
  (else nobody: an agent must name the recipient of the next reply);
- the search terms are rebuilt from the subject, the customer and the remaining messages, and any term holding the
  address is dropped; an address in the subject is replaced by `[erased]`.
Status, tags, assignee and the like are the team's own data and stay.

A whole-conversation erasure (retention) removes every message of the conversation and the conversation itself.
"""

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from . import search_terms

ERASED_MARK = "[erased]"
SNIPPET_CHARS = 400  # as `repositories.conversations`: what of a message is searchable
TERMS_PER_MESSAGE = 100
MAX_TERMS = 1000


def normalise_address(address: str) -> str:
    return address.strip().lower()


def _addresses_of(message: Mapping[str, Any]) -> Iterable[str]:
    for key in ("from", "customer"):
        person = message.get(key) or {}
        if person.get("address"):
            yield person["address"]
    for key in ("to", "cc", "bcc"):
        for person in message.get(key) or []:
            if person.get("address"):
                yield person["address"]
    forwarded = message.get("forwarded") or {}
    for key in ("by", "original_from"):
        value = forwarded.get(key)
        if isinstance(value, Mapping):
            value = value.get("address")
        if isinstance(value, str) and value:
            yield value


def names_address(message: Mapping[str, Any], address: str) -> bool:
    """Whether the message is from, to or about `address` (lower-case), by its parties, not its text."""
    return any(normalise_address(a) == address for a in _addresses_of(message))


def blob_ids(messages: Iterable[Mapping[str, Any]]) -> set[str]:
    """The blobs (raw mail, attachments) the messages refer to."""
    found: set[str] = set()
    for message in messages:
        if message.get("raw_blob_id"):
            found.add(message["raw_blob_id"])
        for attachment in message.get("attachments") or []:
            if attachment.get("sha256"):
                found.add(attachment["sha256"])
    return found


def scrub(text: str, address: str) -> str:
    return re.sub(re.escape(address), ERASED_MARK, text, flags=re.IGNORECASE) if text else text


def mentions(value: Any, needles: Iterable[str]) -> bool:
    """Whether any of `needles` (lower-case) occurs anywhere in `value` (a document or part of one)."""
    text = json.dumps(value, default=str).lower()
    return any(needle and needle in text for needle in needles)


@dataclass
class ConversationPlan:
    """What to do with one conversation: which messages go, and the conversation deleted or updated."""

    conversation_id: str
    erase_message_ids: list[str]
    delete_conversation: bool
    update: dict[str, Any] = field(default_factory=dict)  # `$set` of the kept conversation


def plan_conversation(
    conversation: Mapping[str, Any],
    messages: list[Mapping[str, Any]],
    address: str | None,
    *,
    older_than: datetime | None = None,
) -> ConversationPlan | None:
    """The plan for one conversation; `address` None erases it whole (retention), unless it had a message at or
    after `older_than` meanwhile (then None: nothing to do)."""
    conversation_id = conversation["_id"]
    if address is None:
        last = conversation.get("last_message_at")
        if older_than is not None and last is not None and _aware(last) >= _aware(older_than):
            return None
        return ConversationPlan(conversation_id, [m["_id"] for m in messages], delete_conversation=True)
    erased = [m for m in messages if names_address(m, address)]
    kept = [m for m in messages if m not in erased]
    if not kept:
        return ConversationPlan(conversation_id, [m["_id"] for m in erased], delete_conversation=True)
    return ConversationPlan(
        conversation_id,
        [m["_id"] for m in erased],
        delete_conversation=False,
        update=kept_conversation(conversation, kept, address),
    )


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def kept_conversation(conversation: Mapping[str, Any], kept: list[Mapping[str, Any]], address: str) -> dict[str, Any]:
    """The fields of a conversation that other people's messages keep alive (module docstring)."""
    kept = sorted(kept, key=lambda m: (_aware(m["created_at"]), m["_id"]))
    inbound = [m for m in kept if m.get("direction") == "inbound"]
    customer = dict(conversation.get("customer") or {})
    if normalise_address(customer.get("address", "")) == address:
        sender = (inbound[0].get("from") or {}) if inbound else {}
        customer = {"name": sender.get("name", ""), "address": sender.get("address", "")}
    subject = scrub(conversation.get("subject") or "", address)
    terms = search_terms.terms_of(subject, customer.get("name"), customer.get("address"), limit=TERMS_PER_MESSAGE)
    for message in kept:
        terms += search_terms.terms_of(
            message.get("subject"), (message.get("text") or "")[:SNIPPET_CHARS], limit=TERMS_PER_MESSAGE
        )
    terms = [t for t in dict.fromkeys(terms) if address not in t][:MAX_TERMS]
    newest_inbound = inbound[-1] if inbound else None
    return {
        "subject": subject,
        "normalized_subject": scrub(conversation.get("normalized_subject") or "", address),
        "customer": customer,
        "customer_key": normalise_address(customer.get("address", "")),
        "participants": [p for p in conversation.get("participants") or [] if normalise_address(p) != address],
        "terms": terms,
        "message_ids": [m["_id"] for m in kept],
        "message_count": len(kept),
        "last_message_at": kept[-1]["created_at"],
        "last_inbound_message_id": newest_inbound["_id"] if newest_inbound else None,
        "last_inbound_at": newest_inbound["created_at"] if newest_inbound else None,
    }
