"""From a received mail (and its authentication result) to the events that leave ingest: pure composition."""

from dataclasses import dataclass, field
from typing import Any, TypeVar

from mailstream_common.contracts import DeliveryReported, Event, MailAnalysed, MailReceived
from mailstream_common.contracts.mail import AuthenticationResult

from .bounce_reports import parse_bounce
from .charsets import without_surrogates
from .confirmations import detect_forwarding_test, detect_provider_confirmation
from .forwards import attached_customer_words, detect_forward
from .parsing import ParsedMail, parse_mail

E = TypeVar("E", bound=Event)


@dataclass
class Outcome:
    analysed: MailAnalysed | None
    delivery_reports: list[DeliveryReported] = field(default_factory=list)


def from_domain(parsed: ParsedMail) -> str | None:
    if parsed.from_ is None or "@" not in parsed.from_.address:
        return None
    return parsed.from_.address.rpartition("@")[2].lower()


def analyse(received: MailReceived, parsed: ParsedMail, authentication: AuthenticationResult) -> Outcome:
    """One MailAnalysed for all the mail's streams (none when it only went to bounce addresses), plus one
    DeliveryReported per VERP bounce token it reached."""
    analysed = None
    if received.targets:
        owners = {t.stream_address.lower() for t in received.targets if t.stream_address}
        forwarded = detect_forward(parsed, owners)
        customer = forwarded.original_from if forwarded is not None else parsed.from_
        text, html, warnings = parsed.text, parsed.html, parsed.warnings
        words = attached_customer_words(parsed, forwarded)
        if words is not None and forwarded is not None:  # the customer's words, the forwarder's note apart
            text, html, warnings = words.text, words.html, [*parsed.warnings, *words.warnings]
            forwarded = forwarded.model_copy(update={"note": words.note})
        analysed = MailAnalysed(
            event_id=received.mail_id,  # deterministic: a redelivered mail republishes the same event
            mail_id=received.mail_id,
            correlation_id=received.correlation_id or received.mail_id,
            received_at=received.received_at,
            envelope=received.envelope,
            targets=received.targets,
            raw=received.raw,
            raw_sha256=received.raw_sha256,
            message_id_header=parsed.message_id,
            in_reply_to=parsed.in_reply_to,
            references=parsed.references,
            subject=parsed.subject,
            from_=parsed.from_,
            to=parsed.to,
            cc=parsed.cc,
            reply_to=parsed.reply_to,
            date=parsed.date,
            headers=parsed.headers,
            text=text,
            html=html,
            attachments=parsed.attachments,
            customer=customer,
            forwarded=forwarded,
            authentication=authentication,
            provider_confirmation=detect_provider_confirmation(parsed),
            forwarding_test_token=detect_forwarding_test(parsed),
            parse_warnings=warnings,
            imported=received.imported,
        )
    reports = []
    for index, token in enumerate(received.bounce_tokens):
        bounce_address = next((r for r in received.envelope.rcpt_to if token in r), "")
        found = parse_bounce(parsed, received.envelope.mail_from, bounce_address)
        if found is None:
            continue
        reports.append(
            DeliveryReported(
                # Deterministic per mail and token, so a redelivered mail republishes the same report.
                event_id=f"{received.mail_id[:24]}{index:08x}",
                correlation_id=received.correlation_id or received.mail_id,
                message_id=token,
                status=found.status,
                recipient=found.recipient,
                smtp_code=found.smtp_code,
                permanent=found.permanent,
                detail=found.detail,
                dsn_status=found.dsn_status,
            )
        )
    return Outcome(analysed, reports)


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return without_surrogates(value)
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    if isinstance(value, dict):
        return {k: _scrub(v) for k, v in value.items()}
    return value


def scrubbed(event: E) -> E:
    """The same event with every string made JSON-safe: the last line of defence against undecodable bytes
    that slipped through parsing, so that such a mail is still delivered rather than dead-lettered."""
    return type(event).model_validate(_scrub(event.model_dump(by_alias=True)))


def parse(received: MailReceived) -> ParsedMail:
    return parse_mail(received.raw)
