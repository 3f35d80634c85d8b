"""Build `mail.analysed` events as ingest would, from a real MIME message (so raw bytes and part ids are real)."""

import hashlib
import uuid
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime

from mailstream_common.contracts import Address, MailAnalysed
from mailstream_common.contracts.mail import AttachmentInfo, Envelope, StreamTarget
from mailstream_common.mime_parts import iter_leaf_parts, parse_bytes


def new_message_id(domain: str = "example.net") -> str:
    return f"<{uuid.uuid4().hex}@{domain}>"


def build_raw(
    *,
    sender: Address,
    to: str,
    subject: str,
    text: str,
    html: str | None,
    message_id: str | None,
    in_reply_to: str | None,
    references: list[str],
    attachments: list[tuple[str, str, bytes]],
    extra_headers: list[tuple[str, str]],
) -> bytes:
    message = EmailMessage()
    message["From"] = f"{sender.name} <{sender.address}>" if sender.name else sender.address
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = format_datetime(datetime.now(UTC))
    if message_id:
        message["Message-ID"] = message_id
    if in_reply_to:
        message["In-Reply-To"] = in_reply_to
    if references:
        message["References"] = " ".join(references)
    for name, value in extra_headers:
        message[name] = value
    message.set_content(text)
    if html is not None:
        message.add_alternative(html, subtype="html")
    for filename, content_type, data in attachments:
        maintype, subtype = content_type.split("/", 1)
        message.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return message.as_bytes()


def build_mail(
    target,
    *,
    subject: str = "Where is my order?",
    text: str = "Hello, where is my order #1234?",
    html: str | None = None,
    sender: Address | None = None,
    customer: Address | None = None,
    message_id: str | None = "new",
    in_reply_to: str | None = None,
    references: list[str] | None = None,
    attachments: list[tuple[str, str, bytes]] | None = None,
    extra_headers: list[tuple[str, str]] | None = None,
    received_at: datetime | None = None,
    **fields,
) -> MailAnalysed:
    """One analysed mail for one stream fixture; `message_id=None` builds a mail without a Message-ID."""
    sender = sender or Address(name="Ann Customer", address="ann@example.net")
    message_id = new_message_id() if message_id == "new" else message_id
    references = references or []
    raw = build_raw(
        sender=sender,
        to=target.address,
        subject=subject,
        text=text,
        html=html,
        message_id=message_id,
        in_reply_to=in_reply_to,
        references=references,
        attachments=attachments or [],
        extra_headers=extra_headers or [],
    )
    parsed = parse_bytes(raw)
    infos = []
    for part_id, part in iter_leaf_parts(parsed):
        if part.get_filename():
            data = part.get_payload(decode=True) or b""
            infos.append(
                AttachmentInfo(
                    part_id=part_id,
                    filename=part.get_filename(),
                    content_type=part.get_content_type(),
                    size=len(data),
                    sha256=hashlib.sha256(data).hexdigest(),
                )
            )
    headers = [{"name": k, "value": str(v)} for k, v in parsed.items()]
    return MailAnalysed(
        mail_id=uuid.uuid4().hex,
        received_at=received_at or datetime.now(UTC),
        envelope=Envelope(mail_from=sender.address, rcpt_to=[target.forwarding_address]),
        targets=[
            StreamTarget(
                forwarding_address=target.forwarding_address,
                stream_id=target.stream_id,
                account_id=target.account.account_id,
            )
        ],
        raw=raw,
        raw_sha256=hashlib.sha256(raw).hexdigest(),
        message_id_header=message_id,
        in_reply_to=[in_reply_to] if in_reply_to else [],
        references=references,
        subject=subject,
        **{"from": sender},
        to=[Address(address=target.address)],
        headers=headers,
        text=text,
        html=html,
        attachments=infos,
        customer=customer or sender,
        **fields,
    )
