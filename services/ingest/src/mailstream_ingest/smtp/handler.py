"""The SMTP hooks of the front door: RCPT and DATA translated into the pure core, answered by named replies.

Nothing here decides what a mail means. RCPT asks `RecipientDirectory`; DATA builds a `MailReceived` and answers
250 only once RabbitMQ has confirmed it persistent (451 otherwise, so the sending server keeps the mail and
retries). Mail is never relayed: a recipient that is not ours is refused.
"""

import functools
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session
from opentelemetry.trace import SpanKind

from mailstream_common import logs, tracing
from mailstream_common.contracts import MailReceived

from .. import metrics
from ..backlog import BacklogGate
from ..reception import build_mail_received, new_mail_id
from ..recipients import Bounce, LookupUnavailable, RecipientDirectory, Stream

log = logging.getLogger(__name__)

# Replies, by name (RFC 5321 codes with RFC 3463 enhanced status codes).
OK = "250 2.1.0 OK"
RCPT_OK = "250 2.1.5 OK"
NO_SUCH_USER = "550 5.1.1 No such recipient here"
TOO_MANY_RECIPIENTS = "452 4.5.3 Too many recipients"
LOOKUP_UNAVAILABLE = "451 4.3.0 Recipient lookup unavailable, try again later"
NOT_DURABLE = "451 4.3.0 Mail not stored, try again later"
TOO_MANY_SESSIONS = "421 4.3.2 Too many connections, try again later"
SHUTTING_DOWN = "421 4.3.2 Service shutting down, try again later"
BACKLOGGED = "451 4.3.2 Mail system busy, try again later"
INTERNAL_ERROR = "451 4.3.0 Internal error, try again later"


def accepted(mail_id: str) -> str:
    return f"250 2.0.0 OK queued as {mail_id}"


Publish = Callable[[MailReceived], Awaitable[None]]


class IngestHandler:
    """aiosmtpd hooks. Per-transaction state (the resolved targets) lives on the aiosmtpd Envelope."""

    def __init__(
        self,
        directory: RecipientDirectory,
        publish: Publish,
        *,
        max_recipients: int,
        backlog: BacklogGate | None = None,
    ) -> None:
        self.directory = directory
        self.publish = publish
        self.max_recipients = max_recipients
        self.backlog = backlog or BacklogGate(limit=0)
        self.draining = False

    def __dir__(self) -> list[str]:
        return list(hook_names(type(self), "handle_"))

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]):
        if self.draining:
            metrics.REFUSED.labels("shutting_down").inc()
            return SHUTTING_DOWN
        if self.backlog.shut:
            # Refused before the sender transmits the mail; it keeps it and retries (RFC 5321 4.5.4.1).
            metrics.REFUSED.labels("backlog").inc()
            return BACKLOGGED
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        envelope.targets = []  # type: ignore[attr-defined]
        envelope.bounce_tokens = []  # type: ignore[attr-defined]
        return OK

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]):
        if len(envelope.rcpt_tos) >= self.max_recipients:
            metrics.REFUSED.labels("too_many_recipients").inc()
            return TOO_MANY_RECIPIENTS
        try:
            resolution = await self.directory.resolve(address)
        except LookupUnavailable:
            log.warning("recipient lookup failed", exc_info=True)
            metrics.REFUSED.labels("lookup_unavailable").inc()
            return LOOKUP_UNAVAILABLE
        if isinstance(resolution, Stream):
            envelope.targets.append(resolution.target)  # type: ignore[attr-defined]
        elif isinstance(resolution, Bounce):
            envelope.bounce_tokens.append(resolution.token)  # type: ignore[attr-defined]
        else:
            metrics.REFUSED.labels("unknown_recipient").inc()
            return NO_SUCH_USER
        if address.lower() not in (r.lower() for r in envelope.rcpt_tos):
            envelope.rcpt_tos.append(address)
            envelope.rcpt_options.extend(options)
        return RCPT_OK

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        mail_id = new_mail_id()
        token = logs.correlation_id.set(mail_id)
        # The root of the mail's trace: every broker hop to the stored, analysed, automated and replied mail
        # hangs under it. Domains only, never the addresses. (span is None when tracing is off: nothing computed.)
        with tracing.span("smtp DATA", kind=SpanKind.SERVER) as span:
            if span is not None:
                span.set_attributes(
                    {
                        "mailstream.mail_id": mail_id,
                        "mailstream.mail_from_domain": tracing.domain_of(envelope.mail_from or ""),
                        "mailstream.rcpt_domains": tracing.domains_of(envelope.rcpt_tos),
                        "network.protocol.name": "smtp",
                    }
                )
            try:
                reply = await self._accept(session, envelope, mail_id, span)
                if span is not None:
                    span.set_attribute("smtp.reply_code", int(reply[:3]))
                return reply
            finally:
                logs.correlation_id.reset(token)

    async def _accept(self, session: Session, envelope: Envelope, mail_id: str, span: Any) -> str:
        raw = envelope.original_content or b""
        event = build_mail_received(
            mail_id=mail_id,
            received_at=datetime.now(UTC),
            raw=raw,
            mail_from=envelope.mail_from or "",
            rcpt_to=envelope.rcpt_tos,
            targets=getattr(envelope, "targets", []),
            bounce_tokens=getattr(envelope, "bounce_tokens", []),
            client_ip=_peer_ip(session),
            helo=session.host_name,
            tls=session.ssl is not None,
        )
        if span is not None:
            span.set_attributes({**tracing.event_attributes(event), "mailstream.size": len(raw)})
        started = time.perf_counter()
        try:
            await self.publish(event)
        except Exception as exc:
            metrics.REFUSED.labels("broker_unavailable").inc()
            tracing.mark_error(span, exc)
            log.warning(
                "mail refused: not durable",
                extra={"mail_id": mail_id, "size": len(raw), "error": str(exc)[:300]},
            )
            return NOT_DURABLE
        elapsed = time.perf_counter() - started
        metrics.DURABLE_CONFIRM_SECONDS.observe(elapsed)
        metrics.MAILS_ACCEPTED.inc()
        metrics.MAIL_BYTES.inc(len(raw))
        log.info(
            "mail accepted",
            extra={
                "mail_id": mail_id,
                "size": len(raw),
                "targets": [t.stream_id for t in event.targets],
                "bounces": len(event.bounce_tokens),
                "client_ip": event.envelope.client_ip,
                "confirm_ms": round(elapsed * 1000, 2),
            },
        )
        return accepted(mail_id)

    async def handle_PROXY(self, server: SMTP, session: Session, envelope: Envelope, proxy_data: Any) -> bool:
        """Behind a TCP load balancer speaking the PROXY protocol: the client address is the one it reports."""
        return proxy_data is not None and proxy_data.valid

    async def handle_exception(self, error: Exception) -> str:
        log.error("SMTP session error", exc_info=error)
        metrics.REFUSED.labels("internal_error").inc()
        return INTERNAL_ERROR


def _peer_ip(session: Session) -> str | None:
    """The sending server's address: from the PROXY header when a load balancer sent one, else the socket's."""
    proxied = getattr(session.proxy_data, "src_addr", None) if session.proxy_data is not None else None
    if proxied:
        return str(proxied)
    peer: Any = session.peer
    if isinstance(peer, tuple) and peer:
        return str(peer[0])
    return None


@functools.cache
def hook_names(cls: type, *prefixes: str) -> list[str]:
    return [name for name in dir(cls) if name.startswith(prefixes)]
