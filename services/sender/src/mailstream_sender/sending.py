"""The reply use case: a reply command becomes one sent (or refused, or failed) mail, reported back to inbox.

It reads as a list of steps, Postal style: record `sending` unless already final (the idempotency check and the
attempt in one write), the guard steps (each returns a refusal reason or None), build the MIME and sign it (once
per mail: the bytes are stored before the first SMTP transaction and every later attempt sends them), deliver,
record and report the outcome. A temporary failure raises `Deferred`; the consumer turns it into the broker's retry.

Exactly-once as far as it can be had: the state in `sender_deliveries` is checked and written before the SMTP
transaction (one atomic insert, or a conditional update on a retry) and recorded after it (a conditional update
that never changes a final record), so a command redelivered after the relay accepted the mail and the state was
recorded is only acknowledged (its report re-published, with the stored bytes). The window that remains: a crash
after the relay's 250 reply and before `sent` is recorded leaves `sending`, and the redelivered command sends the
mail a second time (at-least-once), byte for byte the same.

The stream and the suppression list come from per-process caches (`caches.py`), the signing key from its own cache,
so that a mail with warm caches only writes: the `sending` record and the mail before the SMTP transaction, the
outcome after it.
"""

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from mailstream_common import topology
from mailstream_common.broker import backoff_seconds
from mailstream_common.contracts import Address, DeliveryReported, ReplyRequested, utcnow
from mailstream_common.contracts.delivery import FailureReason
from mailstream_common.verp import encode_bounce_address

from .caches import StreamCache, SuppressionCache
from .compose import ComposeError, compose
from .metrics import OUTCOMES, SIGN_SECONDS, SMTP_SECONDS
from .repositories.deliveries import FINAL_STATES, Deliveries, DeliveryRecord
from .repositories.mails import Mails, StoredMail
from .repositories.stream_settings import StreamRecord
from .retention import is_past_retention, mail_expires_at, record_expires_at
from .signing import SigningKey, SigningKeyUnavailable, sign
from .smtp_relay import SendResult, SmtpRelay
from .templating import TemplateRenderError, render

log = logging.getLogger(__name__)

Publish = Callable[[DeliveryReported], Awaitable[None]]


class Attempt(Protocol):
    """Which delivery of the command this is (the broker's `Delivery` is one)."""

    attempt: int
    first_seen: float  # epoch seconds of the command's first delivery


class SigningKeys(Protocol):
    """Where the From domain's active keys come from (`signing_keys.SigningKeyCache`)."""

    async def get(self, domain: str, account_id: str) -> SigningKey | None: ...


# Why a refusal by a guard step failed the mail, as the delivery timeline names it.
GUARD_FAILURE_REASONS: dict[str, FailureReason] = {
    "command is within the record retention": "expired",
    "recipients are not suppressed": "suppressed",
}


class Deferred(Exception):
    """A temporary failure, recorded and reported as `deferred`: try the command again later."""

    def __init__(self, detail: str, retry_after: float | None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.retry_after = retry_after  # the relay's stated delay, if it gave one


@dataclass
class Outgoing:
    """What the steps learn about one command as they go."""

    request: ReplyRequested
    stream: StreamRecord | None = None
    sender: Address | None = None
    recipients: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Outcome:
    """How one attempt ended, as recorded and reported."""

    status: str  # sent, failed (both final) or deferred
    detail: str
    smtp_code: int | None = None
    relay_queue_id: str | None = None
    raw: bytes | None = None  # the mail's bytes, reported with the outcome once it reached the relay
    permanent: bool = False
    failure_reason: FailureReason | None = None  # failed: why
    relay_reply: str | None = None  # the relay's reply to this attempt (or why it could not be reached)
    next_attempt_at: datetime | None = None  # deferred: when the command comes back


@dataclass(frozen=True)
class SenderPolicy:
    bounce_domain: str
    bounce_secret: bytes
    max_age_seconds: float
    max_attempts: int
    retry_base_seconds: float = 5.0
    retention_hours: float = 72  # final records expire this long after; older commands are refused
    retry_delays: tuple[int, ...] = topology.SENDER_REPLIES.retry_delays  # the rungs of the reply queue's retries


class ReplySender:
    def __init__(
        self,
        deliveries: Deliveries,
        mails: Mails,
        publish: Publish,
        relay: SmtpRelay,
        keys: SigningKeys,
        policy: SenderPolicy,
        *,
        streams: StreamCache,
        suppressions: SuppressionCache,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.deliveries = deliveries
        self.mails = mails
        self.publish = publish
        self.relay = relay
        self.keys = keys
        self.policy = policy
        self.clock = clock
        self.streams = streams
        self.suppressions = suppressions
        # The guard steps, in order: each answers None (go on) or the reason the mail must not be sent.
        self.guards: list[tuple[str, Callable[[Outgoing], Awaitable[str | None]]]] = [
            ("command is within the record retention", self.command_is_not_too_old),
            ("stream allows agents to send", self.stream_allows_sending),
            ("From is the stream's address", self.from_is_stream_address),
            ("recipients are not suppressed", self.recipients_not_suppressed),
        ]

    # --- the steps ----------------------------------------------------------------------------------------------

    async def send(self, request: ReplyRequested, delivery: Attempt) -> None:
        recipients = list(dict.fromkeys(a.address.strip().lower() for a in [*request.to, *request.cc, *request.bcc]))
        # `sending` (attempt + 1) unless already final: the idempotency check and the attempt in one atomic write (a
        # first attempt's insert; a retry's conditional update). Before the guards, so that no mail needs a read of
        # its record; a refusal then costs a second write, like any outcome.
        record, first_attempt = await self.deliveries.begin_attempt(
            request.message_id, request.account_id, recipients, request.retry_round
        )
        if record.retry_round > request.retry_round:  # a retry through the API has taken the message over
            log.info("superseded by a retry", extra={"message_id": request.message_id})
            OUTCOMES.labels("duplicate").inc()
            return
        if record.state in FINAL_STATES:  # sent or refused before (a redelivery), or by another worker meanwhile
            log.info("already %s; re-reporting", record.state, extra={"message_id": request.message_id})
            await self.publish(await self._report_of(record, delivery.attempt))
            OUTCOMES.labels("duplicate").inc()
            return

        outgoing = Outgoing(request, recipients=recipients)
        for name, guard in self.guards:
            if (reason := await guard(outgoing)) is not None:
                log.info("reply refused", extra={"message_id": request.message_id, "guard": name, "reason": reason})
                why = GUARD_FAILURE_REASONS.get(name, "invalid")
                refusal = Outcome("failed", f"not sent: {reason}", permanent=True, failure_reason=why)
                await self._final(outgoing, refusal, delivery)
                OUTCOMES.labels("refused").inc()
                return

        # A retry or redelivery sends the bytes an earlier attempt stored (same Date, same signature: a relay that
        # took the first copy before a crash gets an identical second one); a first attempt has none to look for.
        mail = None if first_attempt else await self.mails.get(request.message_id)
        if mail is None and request.retry_round > 0 and not first_attempt:
            # A retry promises the same mail (same Message-ID, same bytes); rebuilt, it would differ.
            gone = Outcome(
                "failed", "not sent: the mail's bytes are no longer kept", permanent=True, failure_reason="expired"
            )
            await self._final(outgoing, gone, delivery)
            OUTCOMES.labels("expired").inc()
            return
        if mail is None:
            mail = await self._build_and_store(outgoing, delivery)
            if mail is None:
                return  # refused or deferred, and reported

        mail_from = encode_bounce_address(request.message_id, self.policy.bounce_secret, self.policy.bounce_domain)
        started = time.perf_counter()
        result = await self.relay.send(mail_from, outgoing.recipients, mail.raw)
        SMTP_SECONDS.observe(time.perf_counter() - started)
        await self._outcome(outgoing, result, mail.raw, mail.signing_note, delivery)

    async def _build_and_store(self, outgoing: Outgoing, delivery: Attempt) -> StoredMail | None:
        """Template, MIME, signature; stored before any SMTP transaction (the crash window stays one write). None
        when the mail cannot be built (failed) or signed right now (deferred): the outcome is recorded."""
        request = outgoing.request
        assert outgoing.sender is not None
        try:
            rendered = render(request.template, request.text, request.html, request.template_context)
            composed = compose(request, outgoing.sender, rendered, self.clock())
        except (TemplateRenderError, ComposeError) as exc:
            invalid = Outcome("failed", f"not sent: {exc}", permanent=True, failure_reason="invalid")
            await self._final(outgoing, invalid, delivery)
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
        self, outgoing: Outgoing, result: SendResult, raw: bytes, signing_note: str, delivery: Attempt
    ) -> None:
        if result.sent:
            detail = f"relay accepted: {result.detail}; {signing_note}"
            sent = Outcome(
                "sent",
                detail,
                smtp_code=result.code,
                relay_queue_id=result.relay_queue_id,
                raw=raw,
                relay_reply=result.detail,
            )
            await self._final(outgoing, sent, delivery)
            OUTCOMES.labels("sent").inc()
        elif result.outcome == "permanent":
            refused = Outcome(
                "failed",
                f"relay refused: {result.detail}",
                smtp_code=result.code,
                raw=raw,
                permanent=True,
                failure_reason="rejected",
                relay_reply=result.detail,
            )
            await self._final(outgoing, refused, delivery)
            OUTCOMES.labels("failed").inc()
        else:
            await self._temporary(outgoing, result, raw, delivery, relay_reply=result.detail)

    async def _temporary(
        self,
        outgoing: Outgoing,
        result: SendResult,
        raw: bytes | None,
        delivery: Attempt,
        *,
        relay_reply: str | None = None,
    ) -> None:
        """Report `deferred` (with the next attempt's time) and raise `Deferred`; or, past the maximum age or
        attempts, fail for good. `relay_reply`: what the relay said, when it was asked."""
        age = time.time() - delivery.first_seen
        if age >= self.policy.max_age_seconds or delivery.attempt >= self.policy.max_attempts:
            detail = f"gave up after {delivery.attempt} attempts over {age:.0f}s: {result.detail}"
            expired = Outcome(
                "failed",
                detail,
                smtp_code=result.code,
                raw=raw,
                permanent=True,
                failure_reason="expired",
                relay_reply=relay_reply,
            )
            await self._final(outgoing, expired, delivery)
            OUTCOMES.labels("expired").inc()
            return
        request = outgoing.request
        recorded = await self.deliveries.finish(
            request.message_id,
            request.account_id,
            outgoing.recipients,
            "deferred",
            detail=result.detail,
            smtp_code=result.code,
            relay_reply=relay_reply,
        )
        if not recorded:
            await self._report_the_final_record(request.message_id, delivery)
            return
        delay = retry_delay(
            result.retry_after, delivery.attempt, self.policy.retry_base_seconds, self.policy.retry_delays
        )
        deferred = Outcome(
            "deferred",
            f"will retry: {result.detail}",
            smtp_code=result.code,
            relay_reply=relay_reply,
            next_attempt_at=self.clock() + timedelta(seconds=delay),
        )
        await self.publish(self._report(outgoing, deferred, delivery))
        OUTCOMES.labels("deferred").inc()
        raise Deferred(result.detail, delay)

    async def _final(self, outgoing: Outgoing, outcome: Outcome, delivery: Attempt) -> None:
        request = outgoing.request
        recorded = await self.deliveries.finish(
            request.message_id,
            request.account_id,
            outgoing.recipients,
            outcome.status,  # type: ignore[arg-type]
            detail=outcome.detail,
            smtp_code=outcome.smtp_code,
            relay_queue_id=outcome.relay_queue_id,
            permanent=outcome.permanent,
            raw_kept=outcome.raw is not None,
            expires_at=record_expires_at(self.clock(), self.policy.retention_hours),
            failure_reason=outcome.failure_reason,
            relay_reply=outcome.relay_reply,
        )
        if not recorded:
            await self._report_the_final_record(request.message_id, delivery)
            return
        await self.publish(self._report(outgoing, outcome, delivery))

    def _report(self, outgoing: Outgoing, outcome: Outcome, delivery: Attempt) -> DeliveryReported:
        request = outgoing.request
        return report(
            request.account_id,
            request.message_id,
            outgoing.recipients,
            outcome,
            delivery.attempt,
            request.correlation_id,
            retry_round=request.retry_round,
        )

    async def _report_the_final_record(self, message_id: str, delivery: Attempt) -> None:
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
        outcome = Outcome(
            record.state,
            record.detail,
            record.smtp_code,
            record.relay_queue_id,
            raw,
            record.permanent,
            failure_reason=record.failure_reason,
            relay_reply=record.relay_reply,
        )
        return report(
            record.account_id,
            record.message_id,
            record.recipients,
            outcome,
            attempt,
            retry_round=record.retry_round,
        )


def report(
    account_id: str | None,
    message_id: str,
    recipients: list[str],
    outcome: Outcome,
    attempt: int,
    correlation_id: str | None = None,
    *,
    retry_round: int = 0,
) -> DeliveryReported:
    """The `delivery.reported` event of an outcome; it names the first recipient."""
    return DeliveryReported(
        account_id=account_id,
        message_id=message_id,
        status=outcome.status,  # type: ignore[arg-type]
        detail=outcome.detail,
        permanent=outcome.permanent,
        smtp_code=outcome.smtp_code,
        relay_queue_id=outcome.relay_queue_id,
        recipient=recipients[0] if recipients else None,
        attempt=attempt,
        raw=outcome.raw,
        correlation_id=correlation_id,
        failure_reason=outcome.failure_reason,
        relay_reply=outcome.relay_reply,
        next_attempt_at=outcome.next_attempt_at,
        retry_round=retry_round,
    )


def retry_delay(stated: float | None, attempt: int, base: float, rungs: tuple[int, ...]) -> float:
    """How long until the command comes back: the relay's stated delay or the backoff, on the first retry queue
    rung at least that long (the broker's retry queues have fixed delays: `topology.SENDER_REPLIES`)."""
    wanted = stated or backoff_seconds(attempt, base=base)
    return float(next((rung for rung in rungs if rung >= wanted), rungs[-1]))
