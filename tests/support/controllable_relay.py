"""A real SMTP relay (aiosmtpd, in a thread of the test) whose answers the test switches while it runs.

The faults of a remote MTA are just SMTP replies: "451 try again later" for every mail while it is overloaded,
"550 mailbox unavailable" for one recipient. `ControllableRelay` gives them on the wire, at the moment the test
says, and records every transaction it accepted (with the time it answered 250) and every one it refused.
"""

import threading
import time
import uuid
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.support.processes import free_port


@dataclass(frozen=True)
class Accepted:
    """One transaction the relay answered 250: the envelope, the exact bytes, when."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    queue_id: str
    at: float  # time.monotonic() of the 250

    def message(self) -> EmailMessage:
        return message_from_bytes(self.data, policy=policy.default)  # type: ignore[return-value]


@dataclass(frozen=True)
class Refused:
    stage: str  # "RCPT" or "DATA"
    address: str  # the recipient (RCPT) or the first recipient (DATA)
    reply: str
    at: float


class _Handler:
    def __init__(self, relay: "ControllableRelay") -> None:
        self.relay = relay

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        with self.relay.lock:
            reply = self.relay._refuse_rcpt.get(address.lower())
            if reply is not None:
                self.relay.refused.append(Refused("RCPT", address, reply, time.monotonic()))
                return reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        with self.relay.lock:
            if self.relay._defer_all is not None:
                first = envelope.rcpt_tos[0] if envelope.rcpt_tos else ""
                self.relay.refused.append(Refused("DATA", first, self.relay._defer_all, time.monotonic()))
                return self.relay._defer_all
            queue_id = uuid.uuid4().hex[:12].upper()
            self.relay.accepted.append(
                Accepted(
                    envelope.mail_from or "",
                    tuple(envelope.rcpt_tos),
                    bytes(envelope.original_content or b""),
                    queue_id,
                    time.monotonic(),
                )
            )
        return f"250 2.0.0 Ok: queued as {queue_id}"


class ControllableRelay:
    """`defer_all(reply)` answers every DATA with a 4xx until `defer_all(None)`; `refuse_recipient(address,
    reply)` answers RCPT TO for that address with a 5xx from then on."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.lock = threading.Lock()
        self.accepted: list[Accepted] = []
        self.refused: list[Refused] = []
        self._defer_all: str | None = None
        self._refuse_rcpt: dict[str, str] = {}
        self._controller: Controller | None = None

    def start(self) -> "ControllableRelay":
        # decode_data=False keeps the exact bytes; server_hostname avoids a DNS lookup of our own name.
        self._controller = Controller(
            _Handler(self), hostname="127.0.0.1", port=self.port, decode_data=False, server_hostname="relay.test"
        )
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def defer_all(self, reply: str | None) -> None:
        if reply is not None and not reply.startswith("4"):
            raise ValueError(f"a deferral is a 4xx reply, not {reply!r}")
        with self.lock:
            self._defer_all = reply

    def refuse_recipient(self, address: str, reply: str) -> None:
        if not reply.startswith("5"):
            raise ValueError(f"a refusal for good is a 5xx reply, not {reply!r}")
        with self.lock:
            self._refuse_rcpt[address.lower()] = reply

    def accept_recipient(self, address: str) -> None:
        """Undo `refuse_recipient`: the address is accepted again from then on."""
        with self.lock:
            self._refuse_rcpt.pop(address.lower(), None)

    def snapshot(self) -> tuple[list[Accepted], list[Refused]]:
        with self.lock:
            return list(self.accepted), list(self.refused)
