"""Quiet history import: a mailbox's old mail brought into a stream, threaded like live mail.

Each mail takes the live path after SMTP: a `MailReceived` (flagged `imported`) goes to ingest, which parses it
and recovers the customer (no SPF/DKIM/DMARC: today's DNS says nothing about old mail), then inbox stores and
threads it exactly as it stores a live mail. The flag travels on: the stored message and its `message.stored` say
`imported`, automation ignores it (no rule runs, no auto-reply) and live clients get `message.imported`, which
they coalesce instead of notifying once per mail.

Threaded like live mail, in the mailbox's order: mails are published without waiting for each other, except that a
mail answering one published earlier in the same run is held back until that one is stored (inbox handles mails
concurrently, and a reply stored before its parent would open a conversation of its own); the mails after it go
on meanwhile.

Idempotent by Message-ID: inbox stores a mail once per stream and Message-ID (its raw digest without one), and
the importer skips mails already stored, so a second run publishes nothing. `mail_id` is derived from the stream
and the bytes, so a republished mail is the same mail to every consumer.

The readers and `received_event` are pure; `import_mails` is the thin I/O shell the CLI and the route share.
"""

import asyncio
import hashlib
import mailbox
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import getaddresses, parsedate_to_datetime
from pathlib import Path
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from mailstream_common.broker import Broker
from mailstream_common.contracts import MailReceived
from mailstream_common.contracts.mail import Envelope, StreamTarget

from .conversation_threading import normalize_message_id
from .repositories import messages as messages_repo

MAX_IMPORT_MAIL_BYTES = 25 * 1024 * 1024
PARENT_WAIT_SECONDS = 120.0
MAX_WAITING = 1000  # mails held back for their parents before the importer stops reading ahead
RELEASE_EVERY = 50


class HistoryImportError(ValueError):
    """The source is not an mbox file or a directory of .eml files."""


def read_mails(source: Path) -> Iterator[bytes]:
    """The raw bytes of every mail in an mbox file, or of every `*.eml` in a directory (sorted by name)."""
    if source.is_dir():
        for path in sorted(source.glob("*.eml")):
            yield path.read_bytes()
        return
    if not source.is_file():
        raise HistoryImportError(f"{source} is neither an mbox file nor a directory of .eml files")
    box = mailbox.mbox(source, create=False)
    try:
        for key in box.iterkeys():
            yield box.get_bytes(key)
    finally:
        box.close()


def count_mails(source: Path) -> int:
    if source.is_dir():
        return sum(1 for _ in source.glob("*.eml"))
    box = mailbox.mbox(source, create=False)
    try:
        return len(box)
    finally:
        box.close()


def dedup_key_of(raw: bytes) -> str:
    """The key inbox stores the mail under in a stream: its Message-ID, else the digest of its bytes."""
    headers = BytesHeaderParser(policy=compat32).parsebytes(raw)
    return normalize_message_id(str(headers.get("Message-ID") or "")) or f"sha256:{hashlib.sha256(raw).hexdigest()}"


def parents_of(raw: bytes) -> list[str]:
    """The Message-IDs a mail answers (In-Reply-To and References), normalised as inbox stores them."""
    headers = BytesHeaderParser(policy=compat32).parsebytes(raw)
    values = " ".join(str(v) for v in [*headers.get_all("In-Reply-To", []), *headers.get_all("References", [])])
    return [i for i in (normalize_message_id(f"<{part}") for part in values.replace(">", " ").split("<")[1:]) if i]


async def is_stored(db: AsyncDatabase, stream_id: str, dedup_key: str) -> bool:
    """One primary-key read: a message's `_id` is derived from its stream and dedup key."""
    return await messages_repo.get_internal(db, messages_repo.message_id_for(stream_id, dedup_key)) is not None


def received_at_of(raw: bytes, fallback: datetime) -> datetime:
    """When the mail was received, as well as its headers tell: the Date header (history keeps its order)."""
    value = BytesHeaderParser(policy=compat32).parsebytes(raw).get("Date")
    try:
        parsed = parsedate_to_datetime(str(value)) if value else None
    except (TypeError, ValueError, IndexError):
        parsed = None
    if parsed is None:
        return fallback
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def received_event(raw: bytes, stream: dict[str, Any], now: datetime) -> MailReceived:
    """The `MailReceived` ingest would have made of this mail, had it arrived at the stream's forwarding address."""
    sha256 = hashlib.sha256(raw).hexdigest()
    headers = BytesHeaderParser(policy=compat32).parsebytes(raw)
    senders = [address for _name, address in getaddresses([str(headers.get("From") or "")]) if "@" in address]
    mail_id = hashlib.sha256(f"import:{stream['_id']}:{sha256}".encode()).hexdigest()[:32]
    return MailReceived(
        event_id=mail_id,
        correlation_id=mail_id,
        mail_id=mail_id,
        received_at=received_at_of(raw, now),
        envelope=Envelope(mail_from=senders[0] if senders else "", rcpt_to=[stream["forwarding_address"]]),
        targets=[
            StreamTarget(
                forwarding_address=stream["forwarding_address"],
                stream_id=stream["_id"],
                account_id=stream["account_id"],
                stream_address=stream["address"],
            )
        ],
        raw=raw,
        raw_sha256=sha256,
        size=len(raw),
        imported=True,
    )


async def import_one(
    db: AsyncDatabase, broker: Broker, stream: dict[str, Any], raw: bytes, now: datetime
) -> tuple[str, str]:
    """('queued' | 'already_imported', mail_id) for one mail."""
    if len(raw) > MAX_IMPORT_MAIL_BYTES:
        raise HistoryImportError(f"mail of {len(raw)} bytes is larger than {MAX_IMPORT_MAIL_BYTES}")
    event = received_event(raw, stream, now)
    if await messages_repo.find_by_dedup_key(db, stream["_id"], dedup_key_of(raw)) is not None:
        return "already_imported", event.mail_id
    await broker.publish(event, correlation_id=event.mail_id)
    return "queued", event.mail_id


@dataclass
class _Waiting:
    raw: bytes
    key: str
    parents: list[str]


async def import_mails(
    db: AsyncDatabase,
    broker: Broker,
    stream: dict[str, Any],
    mails: Iterator[bytes],
    *,
    now: datetime,
    on_progress: Callable[[str], None] = lambda outcome: None,
) -> dict[str, int]:
    """Publish every mail not stored yet; counts per outcome ('queued', 'already_imported', 'too_large').

    A mail whose parent was published in this run but is not stored yet waits in `waiting` (in order) while the
    mails after it go on; each pass over `waiting` publishes those whose parents are stored now. A parent not
    stored within PARENT_WAIT_SECONDS of its own publication (lost, refused) stops holding its children back; the
    clock is the parent's, so a long chain of replies is never released early."""
    counts = {"queued": 0, "already_imported": 0, "too_large": 0}
    in_flight: dict[str, float] = {}  # published in this run, not seen stored yet: when it was published
    waiting: list[_Waiting] = []
    waiting_keys: set[str] = set()

    async def publish(raw: bytes) -> None:
        try:
            outcome, _ = await import_one(db, broker, stream, raw, now)
        except HistoryImportError:
            outcome = "too_large"
        if outcome == "queued":
            in_flight[dedup_key_of(raw)] = time.monotonic()
        counts[outcome] += 1
        on_progress(outcome)

    async def held_back(mail: _Waiting) -> bool:
        for parent in mail.parents:
            if parent in waiting_keys:
                return True  # published after its own parents: the wait is counted there
            published_at = in_flight.get(parent)
            if published_at is None:
                continue
            if await is_stored(db, stream["_id"], parent):
                del in_flight[parent]
            elif time.monotonic() - published_at < PARENT_WAIT_SECONDS:
                return True
        return False

    async def release() -> bool:
        """One pass over the waiting mails, in order; whether any was published."""
        progressed = False
        for mail in list(waiting):
            if await held_back(mail):
                continue
            waiting.remove(mail)
            waiting_keys.discard(mail.key)
            await publish(mail.raw)
            progressed = True
        return progressed

    async def drain(until: int) -> None:
        """Release until at most `until` mails wait, polling (on a backoff) while their parents are on their way."""
        delay = 0.005
        while len(waiting) > until:
            if await release():
                delay = 0.005
                continue
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.2)

    for index, raw in enumerate(mails):
        parents = parents_of(raw)
        if any(p in in_flight or p in waiting_keys for p in parents):
            mail = _Waiting(raw, dedup_key_of(raw), parents)
            waiting.append(mail)
            waiting_keys.add(mail.key)
        else:
            await publish(raw)
        if waiting and index % RELEASE_EVERY == 0:
            await release()
        await drain(MAX_WAITING)
    await drain(0)
    return counts
