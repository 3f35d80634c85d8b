"""Bounces that came back to a VERP address: RFC 3464 delivery status notifications, or a best guess.

Mail to a bounce address that is not a failure report (an out-of-office reply that went to Return-Path, a
challenge-response robot) reports nothing: marking a delivered message as bounced would be worse.
"""

import re
from dataclasses import dataclass
from email.message import Message

from .charsets import without_surrogates
from .parsing import EMAIL, ParsedMail

_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_SMTP_CODE = re.compile(r"(?<![\d.])([45]\d\d)(?=[\s-])")
_BOUNCE_SUBJECT = re.compile(
    r"(?i)undeliver|delivery (status|failure|has failed)|failure notice|returned mail|mail delivery failed"
    r"|delivery failed|could not be delivered|non.?delivery|配信不能|配送エラー|送信エラー|届きませんでした"
)
_DAEMON = re.compile(r"(?i)^(mailer-daemon|postmaster)@")


@dataclass(frozen=True)
class BounceReport:
    status: str  # "bounced" (the delivery failed) or "deferred" (a delay notice)
    recipient: str | None
    smtp_code: int | None
    permanent: bool
    detail: str
    dsn_status: str | None = None  # the enhanced status code (RFC 3463), e.g. "5.1.1"


def parse_bounce(parsed: ParsedMail, envelope_sender: str, bounce_address: str = "") -> BounceReport | None:
    """What the bounce says, or None when the mail is not a failure report at all."""
    report = _delivery_status_part(parsed.message)
    if report is not None:
        found = _from_dsn(report)
        if found is not None:
            return found
    auto_submitted = (parsed.header("Auto-Submitted") or "").lower()
    if auto_submitted.startswith("auto-replied"):
        return None
    sender = parsed.from_.address if parsed.from_ else ""
    looks_like_bounce = (
        envelope_sender == "" or bool(_DAEMON.match(sender)) or bool(_BOUNCE_SUBJECT.search(parsed.subject or ""))
    )
    if not looks_like_bounce:
        return None
    return _heuristic(parsed, bounce_address)


def _delivery_status_part(message: Message) -> Message | None:
    for part in message.walk():
        if part.get_content_type() in ("message/delivery-status", "message/global-delivery-status"):
            return part
    return None


def _dsn_blocks(part: Message) -> list[Message]:
    payload = part.get_payload()
    if isinstance(payload, list):
        return [p for p in payload if isinstance(p, Message)]
    if isinstance(payload, str):  # some parsers leave it as text: split the field groups ourselves
        from email.parser import Parser

        return [Parser().parsestr(chunk) for chunk in re.split(r"\r?\n\r?\n", payload) if chunk.strip()]
    return []


def _from_dsn(part: Message) -> BounceReport | None:
    for block in _dsn_blocks(part):
        action = str(block.get("Action") or "").strip().lower()
        recipient = str(block.get("Final-Recipient") or block.get("Original-Recipient") or "")
        if not action and not recipient:
            continue  # the per-message group
        if action in ("delivered", "relayed", "expanded"):
            continue
        recipient_address = recipient.partition(";")[2].strip() or recipient.strip() or None
        status = str(block.get("Status") or "").strip()
        diagnostic = re.sub(r"\s+", " ", str(block.get("Diagnostic-Code") or "")).strip()
        diagnostic_text = diagnostic.partition(";")[2].strip() if ";" in diagnostic else diagnostic
        code_match = _SMTP_CODE.search(diagnostic_text)
        smtp_code = int(code_match.group(1)) if code_match else None
        delayed = action == "delayed"
        permanent = not delayed and (status.startswith("5") or (smtp_code is not None and smtp_code >= 500))
        detail = diagnostic_text or f"{action or 'failed'} {status}".strip()
        return BounceReport(
            status="deferred" if delayed else "bounced",
            recipient=without_surrogates(recipient_address) if recipient_address else None,
            smtp_code=smtp_code,
            permanent=permanent,
            detail=without_surrogates(detail[:1000]),
            dsn_status=status_match.group(0) if (status_match := _STATUS.search(status)) else None,
        )
    return None


def _heuristic(parsed: ParsedMail, bounce_address: str) -> BounceReport:
    text = parsed.text or ""
    code_match = _SMTP_CODE.search(text)
    status_match = _STATUS.search(text)
    smtp_code = int(code_match.group(1)) if code_match else None
    permanent = (smtp_code is not None and smtp_code >= 500) or bool(status_match and status_match.group(1) == "5")
    recipient = None
    for candidate in EMAIL.findall(text):
        lowered = candidate.lower()
        if lowered != bounce_address.lower() and not _DAEMON.match(lowered):
            recipient = candidate
            break
    detail_line = ""
    if code_match:
        start = text.rfind("\n", 0, code_match.start()) + 1
        end = text.find("\n", code_match.end())
        detail_line = text[start : end if end != -1 else None].strip()
    return BounceReport(
        status="bounced",
        recipient=recipient,
        smtp_code=smtp_code,
        permanent=permanent,
        detail=(detail_line or parsed.subject or "bounce without a delivery status")[:1000],
        dsn_status=status_match.group(0) if status_match else None,
    )
