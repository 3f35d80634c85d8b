"""A real SMTP client (smtplib) driven from a worker thread, so the in-process server keeps running."""

import asyncio
import smtplib
from dataclasses import dataclass, field


@dataclass
class Transaction:
    """The replies of one SMTP transaction, code by code."""

    mail: tuple[int, bytes] | None = None
    rcpt: list[tuple[int, bytes]] = field(default_factory=list)
    data: tuple[int, bytes] | None = None

    @property
    def mail_id(self) -> str:
        """The id in '250 2.0.0 OK queued as <mail id>'."""
        assert self.data is not None and self.data[0] == 250, self.data
        return self.data[1].decode().rsplit(" ", 1)[-1]


def _send(
    port: int, mail_from: str, rcpts: list[str], raw: bytes, mail_options: list[str], starttls: bool
) -> Transaction:
    result = Transaction()
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.ehlo("client.example")
        if starttls:
            import ssl

            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            client.starttls(context=context)
            client.ehlo("client.example")
        result.mail = client.mail(mail_from, mail_options)
        for rcpt in rcpts:
            result.rcpt.append(client.rcpt(rcpt))
        if any(code == 250 for code, _ in result.rcpt):
            result.data = client.data(raw)
        else:
            client.rset()
    return result


async def send(
    port: int,
    mail_from: str,
    rcpts: list[str],
    raw: bytes,
    *,
    mail_options: list[str] | None = None,
    starttls: bool = False,
) -> Transaction:
    return await asyncio.to_thread(_send, port, mail_from, rcpts, raw, mail_options or [], starttls)
