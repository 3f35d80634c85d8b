"""SMTP delivery to the smarthost: pooled connections, a per-destination concurrency limit, and a result value that
says whether a failure is worth retrying.

Connections are reused across mails (one SMTP transaction at a time each; aiosmtplib resets the envelope with RSET
after a refused command). A connection that errors is dropped, not returned to the pool.
"""

import asyncio
import logging
import re
import ssl
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Literal

import aiosmtplib
from opentelemetry.trace import SpanKind

from mailstream_common import tracing

log = logging.getLogger(__name__)

Outcome = Literal["sent", "temporary", "permanent"]

_QUEUE_ID_PATTERNS = (
    re.compile(r"queued as ([A-Za-z0-9._-]+)", re.IGNORECASE),  # Postfix, smtp-sink, Exim-likes
    re.compile(r"\bid[=:\s]+<?([A-Za-z0-9._@-]+?)>?(?:\s|$)", re.IGNORECASE),  # "Ok id=1abc-..."
    re.compile(r"\bOK\s+\d{9,11}\s+(\S+)\s+-\s+gsmtp\b", re.IGNORECASE),  # Gmail: time, then its id
    re.compile(r"\bInternalId=(\d+)"),  # Microsoft 365 / Exchange Online
    re.compile(r"^(?:2\.\d\.\d+\s+)?Ok\s+([0-9a-f]{16}-[0-9a-f-]{20,})\s*$", re.IGNORECASE),  # Amazon SES
)
_RETRY_AFTER = re.compile(
    r"(?:retry|try again)\D{0,30}?(\d{1,6})\s*(s|sec|secs|seconds?|m|min|mins|minutes?)?\b", re.IGNORECASE
)


def parse_queue_id(reply_text: str) -> str | None:
    """The relay's queue id from its 250 reply to DATA, when it names one."""
    for pattern in _QUEUE_ID_PATTERNS:
        if match := pattern.search(reply_text):
            return match.group(1)
    return None


def parse_retry_after(reply_text: str) -> float | None:
    """A delay the server asked for ('try again in 5 minutes', 'retry after 120s'), in seconds."""
    match = _RETRY_AFTER.search(reply_text)
    if match is None:
        return None
    value = float(match.group(1))
    unit = (match.group(2) or "s").lower()
    return value * 60 if unit.startswith("m") else value


@dataclass(frozen=True)
class SendResult:
    """What happened to one delivery attempt. `temporary` failures are retried, `permanent` ones are final."""

    outcome: Outcome
    code: int | None = None
    reply: str = ""
    relay_queue_id: str | None = None
    retry_after: float | None = None
    refused_recipients: tuple[str, ...] = ()

    @property
    def sent(self) -> bool:
        return self.outcome == "sent"

    @property
    def detail(self) -> str:
        text = f"{self.code} {self.reply}".strip() if self.code else self.reply
        if self.refused_recipients:
            text += f" (refused: {', '.join(self.refused_recipients)})"
        return text

    @classmethod
    def from_reply(cls, code: int, reply: str, refused: tuple[str, ...] = ()) -> "SendResult":
        if 200 <= code < 300:
            return cls("sent", code, reply, parse_queue_id(reply), refused_recipients=refused)
        if 400 <= code < 500:
            return cls("temporary", code, reply, retry_after=parse_retry_after(reply))
        return cls("permanent", code, reply)

    @classmethod
    def unreachable(cls, reason: str) -> "SendResult":
        return cls("temporary", None, reason)


@dataclass(frozen=True)
class RelayConfig:
    host: str
    port: int
    tls: Literal["none", "starttls", "implicit"] = "none"
    verify_certificates: bool = True
    username: str | None = None
    password: str | None = None
    timeout: float = 30.0
    pool_size: int = 8
    per_destination_concurrency: int = 8
    helo_name: str | None = None
    idle_check_seconds: float = 30.0


class SmtpRelay:
    """A small pool of connections to one smarthost."""

    def __init__(self, config: RelayConfig) -> None:
        self.config = config
        self._idle: list[tuple[aiosmtplib.SMTP, float]] = []
        self._slots = asyncio.Semaphore(config.pool_size)
        self._destinations: defaultdict[str, asyncio.Semaphore] = defaultdict(
            lambda: asyncio.Semaphore(config.per_destination_concurrency)
        )

    async def send(self, mail_from: str, recipients: list[str], data: bytes) -> SendResult:
        """One SMTP transaction; never raises for SMTP or network trouble (that is in the result)."""
        with tracing.span("smtp send", kind=SpanKind.CLIENT) as span:
            if span is None:  # tracing off: nothing else to do
                return await self._send(mail_from, recipients, data)
            span.set_attributes(
                {
                    "server.address": self.config.host,
                    "server.port": self.config.port,
                    "network.protocol.name": "smtp",
                    "mailstream.rcpt_domains": tracing.domains_of(recipients),
                    "mailstream.size": len(data),
                }
            )
            result = await self._send(mail_from, recipients, data)
            tracing.set_attributes(
                span,
                **{
                    "smtp.reply_code": result.code,
                    "mailstream.outcome": result.outcome,
                    "mailstream.relay_queue_id": result.relay_queue_id,
                },
            )
            if not result.sent:
                tracing.mark_error(span, result.outcome)
            return result

    async def _send(self, mail_from: str, recipients: list[str], data: bytes) -> SendResult:
        destination = recipients[0].rpartition("@")[2].lower() if recipients else ""
        async with self._destinations[destination], self._slots:
            try:
                smtp = await self._acquire()
            except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
                return SendResult.unreachable(f"relay {self.config.host}:{self.config.port} unreachable: {_why(exc)}")
            try:
                errors, reply = await smtp.sendmail(mail_from, recipients, data)
            except aiosmtplib.SMTPRecipientsRefused as exc:
                self._release(smtp)
                worst = max(exc.recipients, key=lambda r: r.code)  # a 5xx for any recipient decides
                return SendResult.from_reply(worst.code, f"{worst.recipient}: {worst.message}")
            except aiosmtplib.SMTPResponseException as exc:
                if exc.code in (421,) or not smtp.is_connected:
                    await self._discard(smtp)
                else:
                    self._release(smtp)
                return SendResult.from_reply(exc.code, exc.message)
            except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
                await self._discard(smtp)
                return SendResult.unreachable(f"relay connection failed during the transaction: {_why(exc)}")
            except BaseException:
                await self._discard(smtp)  # cancelled mid-transaction: the connection's state is unknown
                raise
            self._release(smtp)
            return SendResult.from_reply(250, reply, tuple(sorted(errors)))

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for smtp, _ in idle:
            try:
                await asyncio.wait_for(smtp.quit(), 2)
            except Exception:
                smtp.close()

    async def _acquire(self) -> aiosmtplib.SMTP:
        while self._idle:
            smtp, idle_since = self._idle.pop()
            if not smtp.is_connected:
                continue
            if time.monotonic() - idle_since > self.config.idle_check_seconds:
                try:
                    await smtp.noop()
                except Exception:
                    await self._discard(smtp)
                    continue
            return smtp
        return await self._connect()

    async def _connect(self) -> aiosmtplib.SMTP:
        c = self.config
        smtp = aiosmtplib.SMTP(
            hostname=c.host,
            port=c.port,
            timeout=c.timeout,
            use_tls=c.tls == "implicit",
            start_tls=c.tls == "starttls",
            validate_certs=c.verify_certificates,
            tls_context=None if c.verify_certificates else _unverified_context(),
            local_hostname=c.helo_name,
            username=c.username,
            password=c.password,
        )
        await smtp.connect()
        return smtp

    def _release(self, smtp: aiosmtplib.SMTP) -> None:
        if smtp.is_connected and len(self._idle) < self.config.pool_size:
            self._idle.append((smtp, time.monotonic()))
        else:
            smtp.close()

    async def _discard(self, smtp: aiosmtplib.SMTP) -> None:
        try:
            smtp.close()
        except Exception:
            log.debug("closing a broken relay connection failed", exc_info=True)


def _unverified_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _why(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:300]
