"""The reply consumer: a reply command becomes one sent (or refused, or failed) mail, reported back to inbox.

It reads as a list of steps, Postal style: record `sending` unless already final (the idempotency check and the
attempt in one write), the guard steps (each returns a refusal reason or None), build the MIME and sign it (once
per mail: the bytes are stored before the first SMTP transaction and every later attempt sends them), deliver,
record and report the outcome.

Exactly-once as far as it can be had: the state in `sender_deliveries` is checked and written before the SMTP
transaction (one atomic insert, or a conditional update on a retry) and recorded after it (a conditional update
that never changes a final record), so a command redelivered
after the relay accepted the mail and the state was recorded is only acknowledged (its report re-published, with
the stored bytes). The window that remains: a crash after the relay's 250 reply and before `sent` is recorded
leaves `sending`, and the redelivered command sends the mail a second time (at-least-once), byte for byte the same.

Database round trips per mail: three writes (the `sending` insert and the mail's insert before the SMTP transaction,
the outcome update after it); the stream and the suppression list come from per-process caches (`caches.py`), the
signing key from its own cache.
"""

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime

from prometheus_client import Counter, Histogram
from pymongo.asynchronous.database import AsyncDatabase

from mailstream_common.broker import Delivery, Retry, backoff_seconds
from mailstream_common.contracts import Address, DeliveryReported, ReplyRequested, utcnow
from mailstream_common.verp import encode_bounce_address

from .caches import StreamCache, SuppressionCache, stream_cache
from .compose import ComposeError, compose
from .delivery import SendResult, SmtpRelay
from .repository import FINAL_STATES, Deliveries, DeliveryRecord, Mails, StoredMail, Suppressions
from .retention import is_past_retention, mail_expires_at, record_expires_at
from .signing import SigningKeyCache, SigningKeyUnavailable, sign
from .stream_settings import StreamRecord
from .templating import TemplateRenderError, render

log = logging.getLogger(__name__)

OUTCOMES = Counter("mailstream_sender_outcomes_total", "Reply commands by outcome", ["outcome"])
SIGN_SECONDS = Histogram(
    "mailstream_sender_sign_seconds",
    "Time to DKIM-sign one mail",
    buckets=(0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05),
)
SMTP_SECONDS = Histogram(
    "mailstream_sender_smtp_seconds",
    "Time of one SMTP transaction with the relay",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30),
)

Publish = Callable[[DeliveryReported], Awaitable[None]]


@dataclass
class Outgoing:
    """What the steps learn about one command as they go."""

    request: ReplyRequested
    stream: StreamRecord | None = None
    sender: Address | None = None
    recipients: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class SenderPolicy:
    bounce_domain: str
    bounce_secret: bytes
    max_age_seconds: float
    max_attempts: int
    retry_base_seconds: float = 5.0
    retention_hours: float = 72  # final records expire this long after; older commands are refused


class ReplySender:
    def __init__(
        self,
        db: AsyncDatabase,
        publish: Publish,
        relay: SmtpRelay,
        keys: SigningKeyCache,
        policy: SenderPolicy,
        *,
        streams: StreamCache | None = None,
        suppressions: SuppressionCache | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.db = db
        self.publish = publish
        self.relay = relay
        self.keys = keys
        self.policy = policy
        self.clock = clock
        self.deliveries = Deliveries(db)
        self.mails = Mails(db)
        # Without caches (ttl 0) every mail reads the database, which is always current.
        self.streams = stream_cache(db, ttl_seconds=0) if streams is None else streams
        self.suppressions = SuppressionCache(Suppressions(db), ttl_seconds=0) if suppressions is None else suppressions
        # The guard steps, in order: each answers None (go on) or the reason the mail must not be sent.
        self.guards: list[tuple[str, Callable[[Outgoing], Awaitable[str | None]]]] = [
            ("command is within the record retention", self.command_is_not_too_old),
            ("stream allows agents to send", self.stream_allows_sending),
            ("From is the stream's address", self.from_is_stream_address),
            ("recipients are not suppressed", self.recipients_not_suppressed),
        ]

    # --- the steps ----------------------------------------------------------------------------------------------

    async def handle(self, request: ReplyRequested, delivery: Delivery) -> None:
        recipients = list(dict.fromkeys(a.address.strip().lower() for a in [*request.to, *request.cc]))
        # `sending` (attempt + 1) unless already final: the idempotency check and the attempt in one atomic write (a
        # first attempt's insert; a retry's conditional update). Before the guards, so that no mail needs a read of
        # its record; a refusal then costs a second write, like any outcome.
        record, first_attempt = await self.deliveries.begin_attempt(request.message_id, request.account_id, recipients)
        if record.state in FINAL_STATES:  # sent or refused before (a redelivery), or by another worker meanwhile
            log.info("already %s; re-reporting", record.state, extra={"message_id": request.message_id})
            await self.publish(await self._report_of(record, delivery.attempt))
            OUTCOMES.labels("duplicate").inc()
            return

        outgoing = Outgoing(request, recipients=recipients)
        for name, guard in self.guards:
            if (reason := await guard(outgoing)) is not None:
                log.info("reply refused", extra={"message_id": request.message_id, "guard": name, "reason": reason})
                await self._final(outgoing, "failed", f"not sent: {reason}", delivery, permanent=True)
                OUTCOMES.labels("refused").inc()
                return

        # A retry or redelivery sends the bytes an earlier attempt stored (same Date, same signature: a relay that
        # took the first copy before a crash gets an identical second one); a first attempt has none to look for.
        mail = None if first_attempt else await self.mails.get(request.message_id)
        if mail is None:
            mail = await self._build_and_store(outgoing, delivery)
            if mail is None:
                return  # refused or deferred, and reported

        mail_from = encode_bounce_address(request.message_id, self.policy.bounce_secret, self.policy.bounce_domain)
        started = time.perf_counter()
        result = await self.relay.send(mail_from, outgoing.recipients, mail.raw)
        SMTP_SECONDS.observe(time.perf_counter() - started)
        await self._outcome(outgoing, result, mail.raw, mail.signing_note, delivery)

    async def _build_and_store(self, outgoing: Outgoing, delivery: Delivery) -> StoredMail | None:
        """Template, MIME, signature; stored before any SMTP transaction (the crash window stays one write). None
        when the mail cannot be built (failed) or signed right now (deferred): the outcome is recorded."""
        request = outgoing.request
        assert outgoing.sender is not None
        try:
            rendered = render(request.template, request.text, request.html, request.template_context)
            composed = compose(request, outgoing.sender, rendered, self.clock())
        except (TemplateRenderError, ComposeError) as exc:
            await self._final(outgoing, "failed", f"not sent: {exc}", delivery, permanent=True)
            OUTCOMES.labels("invalid").inc()
            return None
        outgoing.recipients = composed.recipients

        try:
            raw, signing_note = await self._sign(outgoing, composed.data)
        except SigningKeyUnavailable as exc:  # the domains service is down: a temporary failure like any other
            await self._temporary(outgoing, SendResult.unreachable(f"DKIM key not available: {exc}"), None, delivery)
            return None
        # Another worker holding the same command (a redelivery racing it) may have stored its bytes first: then
        # those are sent, so both send the same mail.
        expires_at = mail_expires_at(self.clock(), self.policy.retention_hours, self.policy.max_age_seconds)
        return await self.mails.keep(request.message_id, request.account_id, raw, signing_note, expires_at=expires_at)

    async def command_is_not_too_old(self, outgoing: Outgoing) -> str | None:
        request = outgoing.request
        if is_past_retention(request.occurred_at, self.clock(), self.policy.retention_hours):
            return (
                f"the command is from {request.occurred_at.isoformat()}, older than the delivery records are kept "
                f"({self.policy.retention_hours:g} h), so whether it was sent already cannot be told"
            )
        return None

    async def stream_allows_sending(self, outgoing: Outgoing) -> str | None:
        request = outgoing.request
        if request.kind == "forwarding_test":
            return None  # Mailstream's own check mail, sent from its own address
        stream = await self.streams.get(request.stream_id)
        if stream is None or stream.deleted or stream.account_id != request.account_id:
            return f"stream {request.stream_id} does not exist"
        if not stream.allow_agent_send:
            return f"stream {stream.address} does not allow agents to send"
        outgoing.stream = stream
        return None

    async def from_is_stream_address(self, outgoing: Outgoing) -> str | None:
        request = outgoing.request
        if outgoing.stream is None:  # forwarding test
            outgoing.sender = request.from_
            return None
        if request.from_.address.strip().lower() != outgoing.stream.address.lower():
            return f"From {request.from_.address} is not the stream's address {outgoing.stream.address}"
        outgoing.sender = Address(
            name=outgoing.stream.display_name or request.from_.name, address=outgoing.stream.address
        )
        return None

    async def recipients_not_suppressed(self, outgoing: Outgoing) -> str | None:
        found = await self.suppressions.find(outgoing.request.account_id, outgoing.recipients)
        if found:
            return "; ".join(f"{s.address} is on the suppression list ({s.reason})" for s in found)
        return None

    # --- helpers ------------------------------------------------------------------------------------------------

    async def _sign(self, outgoing: Outgoing, message: bytes) -> tuple[bytes, str]:
        """The signed message and a note for the delivery detail (which key, or why it went unsigned)."""
        assert outgoing.sender is not None
        domain = outgoing.sender.address.rpartition("@")[2].lower()
        key = await self.keys.get(domain, outgoing.request.account_id)
        if key is None:
            return message, f"unsigned: {domain} has no verified DKIM key"
        started = time.perf_counter()
        signed = sign(message, key)
        SIGN_SECONDS.observe(time.perf_counter() - started)
        algorithms = "rsa-sha256" + (" + ed25519-sha256" if key.ed25519_key else "")
        return signed, f"DKIM {algorithms} d={key.domain} s={key.selector}"

    async def _outcome(
        self, outgoing: Outgoing, result: SendResult, raw: bytes, signing_note: str, delivery: Delivery
    ) -> None:
        if result.sent:
            detail = f"relay accepted: {result.detail}; {signing_note}"
            await self._final(
                outgoing,
                "sent",
                detail,
                delivery,
                smtp_code=result.code,
                relay_queue_id=result.relay_queue_id,
                raw=raw,
            )
            OUTCOMES.labels("sent").inc()
        elif result.outcome == "permanent":
            await self._final(
                outgoing,
                "failed",
                f"relay refused: {result.detail}",
                delivery,
                smtp_code=result.code,
                raw=raw,
                permanent=True,
            )
            OUTCOMES.labels("failed").inc()
        else:
            await self._temporary(outgoing, result, raw, delivery)

    async def _temporary(self, outgoing: Outgoing, result: SendResult, raw: bytes | None, delivery: Delivery) -> None:
        """Report `deferred` and raise `Retry`; or, past the maximum age or attempts, fail for good."""
        age = time.time() - delivery.first_seen
        if age >= self.policy.max_age_seconds or delivery.attempt >= self.policy.max_attempts:
            detail = f"gave up after {delivery.attempt} attempts over {age:.0f}s: {result.detail}"
            await self._final(outgoing, "failed", detail, delivery, smtp_code=result.code, raw=raw, permanent=True)
            OUTCOMES.labels("expired").inc()
            return
        delay = result.retry_after or backoff_seconds(delivery.attempt, base=self.policy.retry_base_seconds)
        request = outgoing.request
        recorded = await self.deliveries.finish(
            request.message_id,
            request.account_id,
            outgoing.recipients,
            "deferred",
            detail=result.detail,
            smtp_code=result.code,
        )
        if not recorded:
            await self._report_the_final_record(request.message_id, delivery)
            return
        await self.publish(
            self._report(outgoing, "deferred", f"will retry: {result.detail}", delivery, smtp_code=result.code)
        )
        OUTCOMES.labels("deferred").inc()
        raise Retry(result.detail, delay)

    async def _final(
        self,
        outgoing: Outgoing,
        state: str,
        detail: str,
        delivery: Delivery,
        *,
        smtp_code: int | None = None,
        relay_queue_id: str | None = None,
        raw: bytes | None = None,
        permanent: bool = False,
    ) -> None:
        request = outgoing.request
        recorded = await self.deliveries.finish(
            request.message_id,
            request.account_id,
            outgoing.recipients,
            state,  # type: ignore[arg-type]
            detail=detail,
            smtp_code=smtp_code,
            relay_queue_id=relay_queue_id,
            permanent=permanent,
            raw_kept=raw is not None,
            expires_at=record_expires_at(self.clock(), self.policy.retention_hours),
        )
        if not recorded:
            await self._report_the_final_record(request.message_id, delivery)
            return
        await self.publish(
            self._report(
                outgoing,
                state,
                detail,
                delivery,
                smtp_code=smtp_code,
                relay_queue_id=relay_queue_id,
                raw=raw,
                permanent=permanent,
            )
        )

    def _report(
        self,
        outgoing: Outgoing,
        status: str,
        detail: str,
        delivery: Delivery,
        *,
        smtp_code: int | None = None,
        relay_queue_id: str | None = None,
        raw: bytes | None = None,
        permanent: bool = False,
    ) -> DeliveryReported:
        return DeliveryReported(
            account_id=outgoing.request.account_id,
            message_id=outgoing.request.message_id,
            status=status,  # type: ignore[arg-type]
            detail=detail,
            permanent=permanent,
            smtp_code=smtp_code,
            relay_queue_id=relay_queue_id,
            recipient=outgoing.recipients[0] if outgoing.recipients else None,
            attempt=delivery.attempt,
            raw=raw,
            correlation_id=outgoing.request.correlation_id,
        )

    async def _report_the_final_record(self, message_id: str, delivery: Delivery) -> None:
        """Another worker recorded this command's final outcome first: that one stands, and inbox hears it."""
        log.info("outcome recorded by another worker first", extra={"message_id": message_id})
        record = await self.deliveries.get(message_id)
        if record is not None:
            await self.publish(await self._report_of(record, delivery.attempt))

    async def _report_of(self, record: DeliveryRecord, attempt: int) -> DeliveryReported:
        """The report of a final record, again: the same bytes as the first time (`raw_kept`), read back."""
        raw = None
        if record.raw_kept:
            stored = await self.mails.get(record.message_id)
            raw = stored.raw if stored is not None else None
        return DeliveryReported(
            account_id=record.account_id,
            message_id=record.message_id,
            status=record.state,  # type: ignore[arg-type]
            detail=record.detail,
            permanent=record.permanent,
            smtp_code=record.smtp_code,
            relay_queue_id=record.relay_queue_id,
            recipient=record.recipients[0] if record.recipients else None,
            attempt=attempt,
            raw=raw,
        )
