"""What an accepted SMTP transaction becomes on the broker: pure construction of `MailReceived`."""

import hashlib
import uuid
from datetime import datetime

from mailstream_common.contracts import MailReceived
from mailstream_common.contracts.mail import Envelope, StreamTarget


def new_mail_id() -> str:
    return uuid.uuid4().hex


def build_mail_received(
    *,
    mail_id: str,
    received_at: datetime,
    raw: bytes,
    mail_from: str,
    rcpt_to: list[str],
    targets: list[StreamTarget],
    bounce_tokens: list[str],
    client_ip: str | None,
    helo: str | None,
    tls: bool,
) -> MailReceived:
    """One event per SMTP transaction, whatever the number of streams it reaches (inbox fans out by target)."""
    return MailReceived(
        mail_id=mail_id,
        correlation_id=mail_id,
        received_at=received_at,
        envelope=Envelope(
            mail_from="" if mail_from in ("<>", "") else mail_from,
            rcpt_to=[r.lower() for r in rcpt_to],
            client_ip=client_ip,
            helo=helo,
            tls=tls,
        ),
        targets=_unique_targets(targets),
        bounce_tokens=list(dict.fromkeys(bounce_tokens)),
        raw=raw,
        raw_sha256=hashlib.sha256(raw).hexdigest(),
        size=len(raw),
    )


def _unique_targets(targets: list[StreamTarget]) -> list[StreamTarget]:
    seen: dict[str, StreamTarget] = {}
    for target in targets:
        seen.setdefault(target.stream_id, target)
    return list(seen.values())
