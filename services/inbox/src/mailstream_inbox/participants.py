"""Who takes part in a conversation, and whom a reply goes to. Pure: the store consumer and the reply use case
load the documents, these functions decide.

- Participants: the customer and everyone on To/Cc of the conversation's inbound mail (and whoever wrote one of
  them), except the account's *own* addresses: the stream address, its forwarding address (with or without a
  `+tag`), and the forwarder of a forwarded mail (an agent of the account). Normalised lower-case, bounded.
- A forwarded mail's To/Cc are the forwarder's (usually just the forwarding address), not the customer's: only the
  recovered customer counts from it. A redirect (Resent-*) keeps the original headers, so its To/Cc count.
- Default recipients of a reply: reply-all to the latest inbound mail minus own addresses, with the customer
  always on To: To = customer (+ the latest mail's sender when that was someone else, e.g. a Cc'd colleague);
  Cc = the rest of the latest mail's To/Cc.
- Explicit `to`/`cc`/`bcc` replace the defaults field by field. An address that is not a participant is allowed
  but named in a warning: a third party is never copied silently.
"""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

MAX_PARTICIPANTS = 50


def normalize_address(address: str | None) -> str:
    return (address or "").strip().lower()


def base_address(address: str) -> str:
    """`local+tag@domain` -> `local@domain` (sub-addressing), lower-cased."""
    address = normalize_address(address)
    local, at, domain = address.rpartition("@")
    if not at:
        return address
    return f"{local.split('+', 1)[0]}@{domain}"


@dataclass(frozen=True)
class OwnAddresses:
    """The account's own addresses for one stream; a `+tag` variant of any of them is own too."""

    addresses: frozenset[str] = frozenset()

    @classmethod
    def of(cls, *addresses: str | None) -> "OwnAddresses":
        return cls(frozenset(base_address(a) for a in addresses if a and "@" in a))

    def with_(self, *addresses: str | None) -> "OwnAddresses":
        return OwnAddresses(self.addresses | OwnAddresses.of(*addresses).addresses)

    def __contains__(self, address: object) -> bool:
        return isinstance(address, str) and base_address(address) in self.addresses


def own_addresses_of(stream: Mapping[str, Any]) -> OwnAddresses:
    return OwnAddresses.of(stream.get("address"), stream.get("forwarding_address"))


def _address_of(value: Mapping[str, Any] | None) -> str:
    return normalize_address((value or {}).get("address"))


def participants_of_message(message: Mapping[str, Any], own: OwnAddresses) -> list[str]:
    """The participants one inbound message (a stored message document) brings, in order, without own addresses."""
    forwarded = message.get("forwarded") or {}
    own = own.with_(_address_of(forwarded.get("by")))
    found = [_address_of(message.get("customer"))]
    if forwarded.get("method") in (None, "redirect"):
        found.append(_address_of(message.get("from")))
        found.extend(_address_of(a) for a in [*message.get("to", []), *message.get("cc", [])])
    return _unique(a for a in found if a and "@" in a and a not in own)


def merge_participants(existing: Sequence[str], new: Iterable[str], *, limit: int = MAX_PARTICIPANTS) -> list[str]:
    """`existing` then what `new` adds, at most `limit` (the first ones stay: the customer is always first)."""
    return _unique([*existing, *new])[:limit]


@dataclass(frozen=True)
class Recipients:
    to: list[dict[str, str]]
    cc: list[dict[str, str]] = field(default_factory=list)
    bcc: list[dict[str, str]] = field(default_factory=list)

    def addresses(self) -> list[str]:
        return [a["address"] for a in [*self.to, *self.cc, *self.bcc]]


def _mailbox(value: Mapping[str, Any]) -> dict[str, str]:
    return {"name": str(value.get("name") or ""), "address": normalize_address(value.get("address"))}


def _without(values: Iterable[Mapping[str, Any]], own: OwnAddresses, seen: set[str]) -> list[dict[str, str]]:
    kept = []
    for value in values:
        mailbox = _mailbox(value)
        address = mailbox["address"]
        if not address or "@" not in address or address in own or address in seen:
            continue
        seen.add(address)
        kept.append(mailbox)
    return kept


def default_recipients(
    customer: Mapping[str, Any], latest_inbound: Mapping[str, Any] | None, own: OwnAddresses
) -> Recipients:
    """Reply-all to the latest inbound mail, minus own addresses, the customer always on To."""
    seen: set[str] = set()
    to = _without([customer], own, seen)
    if latest_inbound is None:
        return Recipients(to=to)
    forwarded = latest_inbound.get("forwarded") or {}
    own = own.with_(_address_of(forwarded.get("by")))
    if forwarded.get("method") not in (None, "redirect"):
        return Recipients(to=to)  # the forwarder's headers name the forwarder and us, not the customer's party
    to += _without([latest_inbound.get("from") or {}], own, seen)
    cc = _without([*latest_inbound.get("to", []), *latest_inbound.get("cc", [])], own, seen)
    return Recipients(to=to, cc=cc)


def choose_recipients(
    defaults: Recipients,
    *,
    to: Sequence[Mapping[str, Any]] | None,
    cc: Sequence[Mapping[str, Any]] | None,
    bcc: Sequence[Mapping[str, Any]] | None,
) -> Recipients:
    """Explicit fields replace the defaults (None keeps the default; an empty list means nobody); no address twice."""
    seen: set[str] = set()
    nobody = OwnAddresses()
    chosen_to = _without(defaults.to if to is None else to, nobody, seen)
    chosen_cc = _without(defaults.cc if cc is None else cc, nobody, seen)
    chosen_bcc = _without(defaults.bcc if bcc is None else bcc, nobody, seen)
    return Recipients(to=chosen_to, cc=chosen_cc, bcc=chosen_bcc)


def recipient_warnings(recipients: Recipients, participants: Iterable[str], customer: str) -> list[str]:
    """One warning per recipient who never wrote in, nor was copied on, this conversation."""
    known = {normalize_address(p) for p in participants} | {normalize_address(customer)}
    warnings = []
    for kind, mailboxes in (("to", recipients.to), ("cc", recipients.cc), ("bcc", recipients.bcc)):
        for mailbox in mailboxes:
            if mailbox["address"] not in known:
                warnings.append(f"{kind} {mailbox['address']} is not a participant of this conversation")
    return warnings


def _unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))
