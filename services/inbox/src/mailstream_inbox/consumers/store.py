"""`inbox.store`: store an analysed mail in a conversation of each stream it was sent to.

Per target stream, in this order, each step safe to repeat (the broker may redeliver after a crash anywhere):
1. Mailstream's own forwarding-check mail: mark the stream verified; a provider's "confirm forwarding" mail:
   record it on the stream. Neither ever becomes a customer conversation.
2. Raw bytes and attachments into `blobs` (content-addressed, stored once).
3. Already stored (same stream and Message-ID, or same raw digest without one)? Use that message. Otherwise thread
   it (`threading`), open the conversation if new (unique per first message), insert the message (unique key).
4. Fold it into the conversation (count, last activity, search terms: atomic updates, idempotent), add the people
   it brings to the conversation's participants (`participants.py`; a change is announced as
   `conversation.changed`), mark the stream receiving. The message records why it joined (`thread_reason`).
5. Publish `MessageStored` unless the message is flagged `published` (set only after the broker's confirm), so a
   crash between storing and publishing still publishes on redelivery, and a duplicate never publishes twice.
   Two copies handled at the same moment: one takes the message's publication lease, the other retries after it.

Every write is awaited before the handler returns, and the broker message is acked only then.
"""

import logging
from datetime import timedelta
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from mailstream_common.broker import Broker, Delivery
from mailstream_common.contracts import Address, MailAnalysed, MessageStored, utcnow
from mailstream_common.contracts.mail import AttachmentInfo, StreamTarget
from mailstream_common.mime_parts import extract_parts

from .. import conversation_threading as threads
from .. import metrics, reply_tokens
from .. import participants as people
from ..attachment_rules import account_attachment_limit, omission
from ..html_sanitizer import html_to_text, sanitize_html
from ..outbox import publish_once
from ..repositories import blobs as blobs_repo
from ..repositories import conversations as conversations_repo
from ..repositories import messages as messages_repo
from ..repositories import streams as streams_repo
from ..settings import InboxSettings
from ..use_cases import conversation_moves, snooze
from .actions import conversation_changed

log = logging.getLogger(__name__)

MAX_TEXT_CHARS = 1_000_000
MAX_HTML_CHARS = 2_000_000
EVENT_TEXT_CHARS = 16_000
MAX_REFERENCE_LOOKUPS = 20  # In-Reply-To and the newest References; a thread's root rarely decides alone


def attachment_url(attachment_id: str) -> str:
    return f"/v1/attachments/{attachment_id}"


def dedup_key(event: MailAnalysed) -> str:
    """The idempotency key of an inbound mail within a stream: its Message-ID, else its raw digest."""
    return threads.normalize_message_id(event.message_id_header) or f"sha256:{event.raw_sha256}"


def customer_of(event: MailAnalysed) -> tuple[Address, list[str]]:
    """Whom the conversation belongs to (ingest's recovered customer, else From, else the envelope sender)."""
    if event.customer is not None and event.customer.address:
        return event.customer, []
    if event.from_ is not None and event.from_.address:
        return event.from_, []
    if event.envelope.mail_from:
        return Address(address=event.envelope.mail_from), ["customer taken from the envelope sender"]
    return Address(address=""), ["no sender address: replies cannot be addressed"]


def attachment_records(message_id: str, infos: list[AttachmentInfo]) -> list[dict[str, Any]]:
    return [
        {
            "id": messages_repo.attachment_id(message_id, index),
            "filename": info.filename or f"part-{info.part_id}",
            "content_type": info.content_type,
            "size": info.size,
            "sha256": info.sha256,
            "part_id": info.part_id,
            "content_id": info.content_id,
            "inline": info.inline,
        }
        for index, info in enumerate(infos, start=1)
    ]


def build_inbound_message(
    event: MailAnalysed,
    *,
    message_id: str,
    account_id: str,
    stream_id: str,
    conversation_id: str,
    customer: Address,
    attachments: list[dict[str, Any]],
    raw_blob_id: str,
    warnings: list[str],
) -> dict[str, Any]:
    """The message document for one target stream (pure)."""
    warnings = [*event.parse_warnings, *warnings]
    inline = {a["content_id"].strip("<>"): attachment_url(a["id"]) for a in attachments if a.get("content_id")}
    html = None
    remote_blocked = 0
    if event.html is not None:
        source = event.html
        if len(source) > MAX_HTML_CHARS:
            source = source[:MAX_HTML_CHARS]
            warnings.append(f"html truncated to {MAX_HTML_CHARS} characters for display")
        sanitized = sanitize_html(source, inline_images=inline)
        html, remote_blocked = sanitized.html, sanitized.remote_images_blocked
    text = event.text or (html_to_text(html) if html else "")
    if len(text) > MAX_TEXT_CHARS:
        text = text[:MAX_TEXT_CHARS]
        warnings.append(f"text truncated to {MAX_TEXT_CHARS} characters for display")
    return {
        "_id": message_id,
        "account_id": account_id,
        "conversation_id": conversation_id,
        "stream_id": stream_id,
        "direction": "inbound",
        "mail_id": event.mail_id,
        "from": (event.from_ or customer).model_dump(),
        "customer": customer.model_dump(),
        "to": [a.model_dump() for a in event.to],
        "cc": [a.model_dump() for a in event.cc],
        "reply_to": [a.model_dump() for a in event.reply_to],
        "subject": event.subject,
        "date": event.date,
        "text": text,
        "html": html,
        "remote_images_blocked": remote_blocked,
        "headers": [h.model_dump() for h in event.headers],
        "attachments": attachments,
        "message_id_header": threads.normalize_message_id(event.message_id_header),
        "in_reply_to": [i for i in (threads.normalize_message_id(v) for v in event.in_reply_to) if i],
        "references": [r for r in (threads.normalize_message_id(v) for v in event.references) if r],
        "authentication": event.authentication.model_dump(),
        "forwarded": event.forwarded.model_dump(mode="python") if event.forwarded else None,
        "delivery": None,
        "raw_blob_id": raw_blob_id,
        "raw_size": len(event.raw),
        "envelope": event.envelope.model_dump(),
        "dedup_key": dedup_key(event),
        "created_at": event.received_at,
        "parse_warnings": warnings,
        "published": False,
        "imported": event.imported,
    }


async def _store_blobs(
    db: AsyncDatabase, event: MailAnalysed, message_id: str, limit: int | None = None
) -> tuple[str, list[dict[str, Any]], list[str]]:
    raw_blob_id = await blobs_repo.put(db, event.raw)
    attachments = attachment_records(message_id, event.attachments)
    warnings: list[str] = []
    kept = []
    stored_digests: set[str] = set()
    omitted = {r["part_id"]: why for r in attachments if limit is not None and (why := omission(r["size"], limit))}
    wanted = [record["part_id"] for record in attachments if record["part_id"] not in omitted]
    extracted_parts = extract_parts(event.raw, wanted)  # one parse in all
    for record in attachments:
        if record["part_id"] in omitted:
            kept.append({**record, "omitted": omitted[record["part_id"]]})  # listed, its bytes only in the raw mail
            continue
        extracted = extracted_parts.get(record["part_id"])
        if extracted is None:
            warnings.append(f"attachment part {record['part_id']} not found in the raw message")
            continue
        data, _ = extracted
        sha256 = blobs_repo.digest(data)
        if sha256 not in stored_digests:  # a mail of many identical parts stores (and checks) the bytes once
            await blobs_repo.put(db, data)
            stored_digests.add(sha256)
        record["sha256"] = sha256
        record["size"] = len(data)
        kept.append(record)
    return raw_blob_id, kept, warnings


async def _choose_conversation(
    db: AsyncDatabase, event: MailAnalysed, stream: dict[str, Any], customer: Address, key: str, window_days: float
) -> tuple[dict[str, Any], bool, threads.ThreadReason]:
    """(conversation, is_first_message, why) for a mail not stored yet."""
    mail = threads.InboundMail(
        stream_id=stream["_id"],
        customer_address=customer.address,
        subject=event.subject,
        in_reply_to=tuple(event.in_reply_to),
        references=tuple(event.references),
        received_at=event.received_at,
        reply_tokens=tuple(
            reply_tokens.tokens_in(
                message_ids=[*event.in_reply_to, *event.references],
                addresses=[*event.envelope.rcpt_to, *(a.address for a in [*event.to, *event.cc])],
            )[:MAX_REFERENCE_LOOKUPS]
        ),
    )
    keys_by_conversation: dict[str, set[str]] = {}
    for message_id_header in threads.reference_ids(mail.in_reply_to, mail.references)[:MAX_REFERENCE_LOOKUPS]:
        conversation_id = await messages_repo.conversation_of(db, stream["_id"], message_id_header)
        if conversation_id is not None:
            keys_by_conversation.setdefault(conversation_id, set()).add(message_id_header)
    referenced = await conversations_repo.candidates(db, keys_by_conversation)
    normalized_subject = threads.normalize_subject(event.subject)
    same_subject = [
        *await conversations_repo.find_by_subject(db, stream["_id"], normalized_subject, customer.address),
        *await conversations_repo.find_by_participant_subject(db, stream["_id"], normalized_subject, customer.address),
    ]
    tokened = await conversations_repo.find_by_reply_tokens(db, stream["_id"], list(mail.reply_tokens))
    decision = threads.choose_conversation(
        mail, referenced, same_subject, window=timedelta(days=window_days), tokened=tokened
    )
    if decision.conversation_id is not None:
        found = await conversations_repo.get_internal(db, decision.conversation_id)
        if found is not None:
            found = await conversation_moves.follow_for_mail(db, found)  # a merged conversation's mail: the target
            log.info("threaded", extra={"conversation_id": found["_id"], "reason": decision.reason})
            return found, False, decision.reason
    subject, _ = threads.strip_reply_prefixes(event.subject)
    conversation, _created = await conversations_repo.create_once(
        db,
        account_id=stream["account_id"],
        topic_id=stream["topic_id"],
        stream_id=stream["_id"],
        subject=subject,
        normalized_subject=threads.normalize_subject(event.subject),
        customer=customer.model_dump(),
        origin_key=key,
        started_at=event.received_at,
    )
    return conversation, True, "new"


async def store_for_stream(
    db: AsyncDatabase, broker: Broker, settings: InboxSettings, event: MailAnalysed, target: StreamTarget
) -> dict[str, Any] | None:
    """Steps 1-5 of the module docstring for one target; the stored message (None when nothing is stored)."""
    stream = await streams_repo.get_stream(db, target.account_id, target.stream_id)
    if stream is None:
        log.warning("mail for a missing or deleted stream dropped", extra={"stream_id": target.stream_id})
        return None
    if event.forwarding_test_token:
        method = event.forwarded.method if event.forwarded else "direct"
        verified = await streams_repo.mark_forwarding_verified(db, stream["_id"], event.forwarding_test_token, method)
        log.info("forwarding check mail arrived", extra={"stream_id": stream["_id"], "verified": verified})
        return None
    if event.provider_confirmation is not None:
        await streams_repo.record_provider_confirmation(
            db, stream["_id"], event.provider_confirmation.model_dump(mode="python")
        )
        log.info("provider confirmation recorded", extra={"stream_id": stream["_id"]})
        return None

    key = dedup_key(event)
    stored = await messages_repo.find_by_dedup_key(db, stream["_id"], key)
    if stored is None:
        message_id = messages_repo.message_id_for(stream["_id"], key)
        limit = await account_attachment_limit(db, stream["account_id"], settings) if event.attachments else None
        raw_blob_id, attachments, warnings = await _store_blobs(db, event, message_id, limit)
        customer, customer_warnings = customer_of(event)
        existing = await conversations_repo.find_by_origin(db, stream["_id"], key)
        reason: threads.ThreadReason = "new"
        if existing is not None:  # a crash after opening the conversation, before storing the message
            conversation, is_first = existing, True
        else:
            conversation, is_first, reason = await _choose_conversation(
                db, event, stream, customer, key, settings.threading_window_days
            )
        document = build_inbound_message(
            event,
            message_id=message_id,
            account_id=stream["account_id"],
            stream_id=stream["_id"],
            conversation_id=conversation["_id"],
            customer=customer,
            attachments=attachments,
            raw_blob_id=raw_blob_id,
            warnings=[*warnings, *customer_warnings],
        )
        document["is_first_message"] = is_first
        document["thread_reason"] = reason
        stored, created = await messages_repo.insert(db, document)
        if not created:
            log.info("duplicate mail ignored", extra={"message_id": stored["_id"]})
        elif not event.imported:  # counted once per stored mail, never on a redelivery
            metrics.record_stored(stream["_id"], event.received_at, utcnow())

    await snooze.wake_for_customer(db, broker, stored["conversation_id"], stored["created_at"])
    await conversations_repo.record_message(
        db,
        stored["conversation_id"],
        message_id=stored["_id"],
        message_at=stored["created_at"],
        terms=conversations_repo.message_terms(stored.get("subject"), stored.get("text")),
        inbound=True,
    )
    await _add_participants(db, broker, stored, stream, event.correlation_id)
    await streams_repo.mark_receiving(db, stream["_id"])
    if not stored.get("published"):
        await publish_once(db, broker, stored["_id"], message_stored_event(stored, stream, event.correlation_id))
    return stored


async def _add_participants(
    db: AsyncDatabase, broker: Broker, stored: dict[str, Any], stream: dict[str, Any], correlation_id: str | None
) -> None:
    """The people the message brings join the conversation; live clients hear of a change (best effort: the
    conversation API is the truth, and a redelivery finds the list complete already)."""
    added = people.participants_of_message(stored, people.own_addresses_of(stream))
    if not await conversations_repo.add_participants(db, stored["conversation_id"], added):
        return
    conversation = await conversations_repo.get_internal(db, stored["conversation_id"])
    if conversation is None:
        return
    try:
        await broker.publish(conversation_changed(conversation, "system", correlation_id))
    except Exception:
        log.warning("could not announce new participants", extra={"conversation_id": conversation["_id"]})


def message_stored_event(stored: dict[str, Any], stream: dict[str, Any], correlation_id: str | None) -> MessageStored:
    customer = stored.get("customer") or stored.get("from")
    return MessageStored(
        account_id=stored["account_id"],
        topic_id=stream["topic_id"],
        stream_id=stored["stream_id"],
        conversation_id=stored["conversation_id"],
        message_id=stored["_id"],
        direction=stored["direction"],
        is_first_message=bool(stored.get("is_first_message")),
        from_=Address.model_validate(customer) if customer and customer.get("address") else None,
        to=[Address.model_validate(a) for a in stored.get("to", [])],
        cc=[Address.model_validate(a) for a in stored.get("cc", [])],
        subject=stored.get("subject", ""),
        text=(stored.get("text") or "")[:EVENT_TEXT_CHARS],
        headers=stored.get("headers", []),
        has_attachment=bool(stored.get("attachments")),
        authentication=stored.get("authentication") or {},
        received_at=stored["created_at"],
        correlation_id=correlation_id,
        thread_reason=stored.get("thread_reason"),
        imported=bool(stored.get("imported")),
    )


def make_handler(db: AsyncDatabase, broker: Broker, settings: InboxSettings):
    async def handle(event: MailAnalysed, delivery: Delivery) -> None:
        for target in event.targets:
            await store_for_stream(db, broker, settings, event, target)

    return handle
