"""The SMTP listener: aiosmtpd's protocol in the service's own event loop, with the limits of the front door.

Session limit (421), line length (500), size (552), command and DATA time limits, STARTTLS, SO_REUSEPORT, PROXY
protocol, draining shutdown. What a command means is the handler's (`handler.py`); DATA framing is `framing.py`'s.
"""

import asyncio
import logging
import re
import ssl
import time
from typing import Any

from aiosmtpd.smtp import MISSING, SMTP

from .. import metrics
from .framing import END, ends_data, unstuff
from .handler import SHUTTING_DOWN, TOO_MANY_SESSIONS, IngestHandler, hook_names

log = logging.getLogger(__name__)

# A plain <local@domain> path (dot-atoms only), optionally followed by parameters: parsed without the email
# package's general header parser; anything else (quoted local parts, comments, literals) still goes through it.
_PLAIN_PATH = re.compile(
    r"\s*<([A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*)>(?:\s+([^\s(\"<][^(\"<]*))?\s*"
)


class _IngestSMTP(SMTP):
    """aiosmtpd's protocol plus a session limit, a configurable line limit and refusal metrics.

    aiosmtpd builds its dispatch tables from `dir()` of the protocol and the handler on every connection, a large
    share of the work of a small transaction: `dir()` here lists only the names those tables are made of.
    """

    def __dir__(self) -> list[str]:
        return list(hook_names(type(self), "smtp_", "auth_"))

    def __init__(self, front_door: "SmtpFrontDoor", handler: IngestHandler, **kwargs: Any) -> None:
        self.line_length_limit = front_door.max_line_length  # read by SMTP.__init__ for the stream limit
        super().__init__(handler, **kwargs)
        self._front_door = front_door
        self._counted = False
        self._pending_lines: list[str] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        first = self.transport is None
        super().connection_made(transport)
        if first:
            self._counted = True
            self._front_door.sessions.add(self)
            metrics.SMTP_SESSIONS.inc()
            metrics.SMTP_SESSIONS_ACTIVE.inc()

    def connection_lost(self, error: Exception | None) -> None:
        if self._counted:
            self._counted = False
            self._front_door.sessions.discard(self)
            metrics.SMTP_SESSIONS_ACTIVE.dec()
        super().connection_lost(error)

    async def _handle_client(self) -> None:
        if len(self._front_door.sessions) > self._front_door.max_sessions:
            metrics.REFUSED.labels("too_many_sessions").inc()
            await self.push(TOO_MANY_SESSIONS)
            if self.transport is not None:
                self.transport.close()
            return
        await super()._handle_client()

    async def smtp_DATA(self, arg: str) -> None:
        """aiosmtpd's DATA, reading the transfer in large pieces rather than one Python call per line.

        Same replies as aiosmtpd: 503 without RCPT, 501 with an argument, 552 over the size limit and 500 for a line
        over the line limit (both only once the transfer has ended), else the handler's reply. aiosmtpd's idle timer
        is not reset while DATA streams in: the whole transfer has its own limit.
        """
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        self._reset_timeout(self._front_door.data_timeout)
        try:
            await self.push("354 End data with <CR><LF>.<CR><LF>")
            transfer = await self._read_transfer()
        finally:
            if self.transport is not None:
                self._reset_timeout()
        content = None if transfer is None else unstuff(transfer, self.line_length_limit)
        if content is None:
            self._set_post_data_state()
            await self.push(
                "552 Error: Too much mail data" if transfer is None else "500 Line too long (see RFC5321 4.5.3.1.6)"
            )
            return
        self.envelope.content = self.envelope.original_content = content
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()
        await self.push("250 OK" if status is MISSING else status)

    async def _read_transfer(self) -> bytes | None:
        """Everything up to and including the lone dot; None (having read it all) when it exceeds the size limit."""
        limit = self.data_size_limit or 0
        pieces: list[bytes] = []
        tail = b""
        total = 0
        try:
            while True:
                try:
                    piece = await self._reader.readuntil(END[2:])
                    ended = True
                except asyncio.LimitOverrunError as error:  # no lone dot within the stream limit: take what is there
                    piece = await self._reader.readexactly(error.consumed)
                    ended = False
                total += len(piece)
                tail = (tail + piece[-len(END) :])[-len(END) :]
                too_much = limit and total - 3 > limit
                if not too_much:
                    pieces.append(piece)
                elif pieces:
                    pieces.clear()  # memory: nothing of an oversized mail is kept
                if ended and ends_data(tail, total):
                    return None if too_much else b"".join(pieces)
        except asyncio.CancelledError:
            log.info("connection lost during DATA")
            self._writer.close()
            raise

    async def push(self, status: str | bytes) -> None:
        """One write per reply: the lines of a multi-line reply (EHLO) are held until its last line."""
        text = status if isinstance(status, str) else status.decode("utf-8", "replace")
        if text.startswith("552"):
            metrics.REFUSED.labels("too_large").inc()
        elif text.startswith("500 Line too long"):
            metrics.REFUSED.labels("line_too_long").inc()
        last = text.rpartition("\n")[2]
        if len(last) > 3 and last[3] == "-":
            self._pending_lines.append(text)
            return
        if self._pending_lines:
            status = "\r\n".join([*self._pending_lines, text])
            self._pending_lines.clear()
        await super().push(status)

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        plain = _PLAIN_PATH.fullmatch(arg) if arg else None
        if plain is None:
            return super()._getaddr(arg)
        address = plain.group(1)
        if self.local_part_limit and len(address.rpartition("@")[0]) > self.local_part_limit:
            return None, None
        return address, plain.group(2) or ""

    @property
    def in_transaction(self) -> bool:
        return self.envelope is not None and self.envelope.mail_from is not None


class SmtpFrontDoor:
    """The listening socket and its sessions; `stop()` drains them."""

    def __init__(
        self,
        handler: IngestHandler,
        *,
        host: str,
        port: int,
        hostname: str,
        max_message_bytes: int,
        max_line_length: int,
        max_sessions: int,
        timeout: float,
        data_timeout: float = 600.0,
        proxy_protocol_timeout: float | None = None,
        tls_context: ssl.SSLContext | None = None,
        reuse_port: bool = False,
    ) -> None:
        self.handler = handler
        self.host = host
        self.port = port
        self.hostname = hostname
        self.max_message_bytes = max_message_bytes
        self.max_line_length = max_line_length
        self.max_sessions = max_sessions
        self.timeout = timeout
        self.data_timeout = data_timeout
        self.proxy_protocol_timeout = proxy_protocol_timeout
        self.tls_context = tls_context
        self.reuse_port = reuse_port
        self.sessions: set[_IngestSMTP] = set()
        self._server: asyncio.Server | None = None

    def _protocol(self) -> _IngestSMTP:
        return _IngestSMTP(
            self,
            self.handler,
            data_size_limit=self.max_message_bytes,
            enable_SMTPUTF8=True,
            hostname=self.hostname,
            ident="Mailstream ingest",
            tls_context=self.tls_context,
            timeout=self.timeout,
            proxy_protocol_timeout=self.proxy_protocol_timeout,
            loop=asyncio.get_running_loop(),
        )

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._protocol, host=self.host, port=self.port, reuse_port=self.reuse_port or None, backlog=512
        )
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("SMTP listening", extra={"host": self.host, "port": self.port, "reuse_port": self.reuse_port})

    def is_listening(self) -> bool:
        return self._server is not None and self._server.is_serving()

    async def stop(self, grace: float) -> None:
        """Stop accepting; let open transactions finish for `grace` seconds; then close what is left."""
        if self._server is None:
            return
        self._server.close()
        self.handler.draining = True
        deadline = time.monotonic() + grace
        while self.sessions and time.monotonic() < deadline:
            for session in list(self.sessions):
                if not session.in_transaction and session.transport is not None:
                    session.transport.write(SHUTTING_DOWN.encode() + b"\r\n")
                    session.transport.close()
            await asyncio.sleep(0.05)
        for session in list(self.sessions):
            if session.transport is not None:
                session.transport.close()
        self._server = None


def tls_context(cert_file: str | None, key_file: str | None) -> ssl.SSLContext | None:
    """STARTTLS is offered only when both a certificate and its key are configured."""
    if not (cert_file and key_file):
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    return context
