"""Real SMTP relays for tests of outgoing mail.

- `RecordingSink`: an aiosmtpd server (in its own thread) that records every accepted transaction and can be told
  to answer the next DATA commands with a 4xx/5xx reply, or be stopped and started again on the same port.
- `PostfixSink`: Postfix's `smtp-sink`, which writes each accepted mail to a file (`-d`): the relay of the
  benchmark and of the end-to-end tests.
"""

import asyncio
import shutil
import subprocess
import tempfile
import threading
import uuid
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.support.processes import free_port
from tests.support.waiting import wait_for_sync

SMTP_SINK = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"


@dataclass(frozen=True)
class Received:
    """One accepted transaction: the envelope and the exact bytes of DATA."""

    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    queue_id: str
    tls: bool = False
    login: str | None = None

    def message(self) -> EmailMessage:
        return message_from_bytes(self.data, policy=policy.default)  # type: ignore[return-value]


@dataclass
class _Faults:
    replies: list[str] = field(default_factory=list)
    always: str | None = None


class _Handler:
    def __init__(self, sink: "RecordingSink") -> None:
        self.sink = sink

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.sink.data_delay:  # hold the reply, to see how many transactions a client keeps open at once
            with self.sink.lock:
                self.sink.open_transactions += 1
                self.sink.max_open_transactions = max(self.sink.max_open_transactions, self.sink.open_transactions)
            await asyncio.sleep(self.sink.data_delay)
            with self.sink.lock:
                self.sink.open_transactions -= 1
        with self.sink.lock:
            self.sink.attempts += 1
            if self.sink.faults.replies:
                return self.sink.faults.replies.pop(0)
            if self.sink.faults.always:
                return self.sink.faults.always
            queue_id = uuid.uuid4().hex[:12].upper()
            login = session.auth_data.login.decode() if session.authenticated and session.auth_data else None
            self.sink.received.append(
                Received(
                    envelope.mail_from or "",
                    list(envelope.rcpt_tos),
                    bytes(envelope.original_content),
                    queue_id,
                    tls=session.ssl is not None or server.transport.get_extra_info("ssl_object") is not None,
                    login=login,
                )
            )
        return f"250 2.0.0 Ok: queued as {queue_id}"


class RecordingSink:
    def __init__(self, port: int | None = None, **smtp_options) -> None:
        """`smtp_options` go to aiosmtpd (e.g. tls_context + require_starttls, authenticator, auth_required),
        plus `ssl_context` for implicit TLS."""
        self.port = port or free_port()
        self.smtp_options = smtp_options
        self.lock = threading.Lock()
        self.received: list[Received] = []
        self.attempts = 0
        self.faults = _Faults()
        self.data_delay = 0.0
        self.open_transactions = 0
        self.max_open_transactions = 0
        self._controller: Controller | None = None

    def start(self) -> "RecordingSink":
        # decode_data=False keeps `original_content` as the exact bytes on the wire.
        # server_hostname: aiosmtpd would otherwise ask socket.getfqdn(), which waits on DNS where there is none.
        self._controller = Controller(
            _Handler(self),
            hostname="127.0.0.1",
            port=self.port,
            decode_data=False,
            server_hostname="relay.test",
            **self.smtp_options,
        )
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def answer_next(self, *replies: str) -> None:
        """The next DATA commands get these replies (e.g. '451 4.3.0 Try again later') instead of 250."""
        with self.lock:
            self.faults.replies.extend(replies)

    def answer_always(self, reply: str | None) -> None:
        """Answer every DATA with `reply` until called with None."""
        with self.lock:
            self.faults.always = reply

    def messages(self) -> list[Received]:
        with self.lock:
            return list(self.received)

    def wait_for(self, count: int, timeout: float = 20.0) -> list[Received]:
        return wait_for_sync(
            lambda: found if len(found := self.messages()) >= count else None,
            timeout=timeout,
            what=f"{count} mail(s) at the relay",
        )


class PostfixSink:
    """Postfix's smtp-sink writing each mail it accepts to a file of its own directory.

    smtp-sink drops to `nobody` before writing and dies (`fatal: open ...: Permission denied`) when it cannot, so
    the directory is made under the system temp dir (world-traversable), never under pytest's 0700 tmp_path.
    """

    def __init__(self, port: int | None = None, backlog: int = 256) -> None:
        self.port = port or free_port()
        self.backlog = backlog
        self.directory = Path(tempfile.mkdtemp(prefix="mailstream-smtp-sink-"))
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, dump: bool = True) -> "PostfixSink":
        self.directory.chmod(0o777)
        args = [SMTP_SINK, "-u", "nobody"]
        if dump:
            args += ["-d", f"{self.directory}/%H%M%S."]
        self.proc = subprocess.Popen(
            [*args, f"127.0.0.1:{self.port}", str(self.backlog)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        shutil.rmtree(self.directory, ignore_errors=True)

    def dumps(self) -> list[bytes]:
        """Each mail as smtp-sink wrote it: its own X-* envelope lines and Received header, then the message."""
        return [p.read_bytes() for p in sorted(self.directory.iterdir())]
