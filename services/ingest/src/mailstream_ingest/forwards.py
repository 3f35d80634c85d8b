"""Who the customer is when the mail did not come from them directly.

A *redirect* keeps the customer in `From`: Resent-* or X-Forwarded-* headers show who redirected it, or nothing
does, but the mail is addressed to the stream's own address and still arrived at the forwarding address. A
*forward* makes the mailbox owner the sender and puts the customer in the body (an inline header block whose
wording depends on the client) or in an attached message/rfc822. Each client's block is recognised by its own
rule, so `detected_by` tells which one fired.

A mail that a *customer* forwarded to support (their own bank's mail, say) also has such a block; it is only taken
for the mailbox owner's forward when the outer sender is the owner: the stream's own address or its domain.
"""

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from email.message import Message
from email.utils import getaddresses, parsedate_to_datetime

from mailstream_common.contracts.base import Address
from mailstream_common.contracts.mail import ForwardInfo

from .charsets import header_to_text
from .parsing import EMAIL, ParsedMail, html_to_text, parse_addresses, parse_mail

FREE_MAIL_DOMAINS = frozenset(
    {
        "gmail.com", "googlemail.com", "outlook.com", "hotmail.com", "live.com", "msn.com", "outlook.jp",
        "hotmail.co.jp", "live.jp", "yahoo.com", "yahoo.co.jp", "ymail.com", "icloud.com", "me.com", "mac.com",
        "aol.com", "gmx.com", "gmx.de", "gmx.net", "web.de", "mail.com", "proton.me", "protonmail.com",
        "zoho.com", "yandex.com", "yandex.ru", "docomo.ne.jp", "ezweb.ne.jp", "softbank.ne.jp", "i.softbank.jp",
        "au.com", "fastmail.com", "qq.com", "163.com",
    }
)  # fmt: skip

_FORWARD_SUBJECT = re.compile(r"^\s*(?:\[?(?:fwd?|fw|tr|wg|rv|enc|転送)\]?\s*[:：])", re.IGNORECASE)


@dataclass(frozen=True)
class Marker:
    """A line that starts a forwarded block, and the rule name it stands for."""

    name: str
    pattern: re.Pattern[str]


# Order matters only where two markers could match the same line; each is anchored to a whole line.
MARKERS: tuple[Marker, ...] = (
    # Gmail: ten dashes, "Forwarded message" with a lower-case m, nine dashes (the same in every UI language).
    Marker("gmail-inline", re.compile(r"^-{8,10}\s*Forwarded message\s*-{8,10}$")),
    # Thunderbird: eight dashes either side, "Forwarded Message" or, in Japanese, 転送メッセージ.
    Marker("thunderbird", re.compile(r"^-{8}\s*(Forwarded Message|転送メッセージ|Weitergeleitete Nachricht|Message transféré)\s*-{8}$")),
    # Outlook desktop in plain-text mode (and Outlook Express, older Outlook for Mac).
    Marker("outlook-desktop", re.compile(r"^-{5}\s*(Original Message|元のメッセージ|Ursprüngliche Nachricht|Message d'origine)\s*-{5}$", re.IGNORECASE)),
    Marker("apple-mail", re.compile(r"^(Begin forwarded message|転送されたメッセージ|Anfang der weitergeleiteten Nachricht)\s*[:：]\s*$", re.IGNORECASE)),
    # Outlook on the web and new Outlook: a rule of underscores before the From:/差出人: block.
    Marker("outlook-web", re.compile(r"^_{10,}$")),
)  # fmt: skip

# Header labels inside forwarded blocks, as each client writes them (English and Japanese).
FIELD_LABELS = {
    "from": "from", "差出人": "from", "送信者": "from", "送信元": "from", "von": "from", "de": "from",
    "date": "date", "sent": "date", "送信日時": "date", "日付": "date", "日時": "date", "送信日": "date",
    "gesendet": "date", "datum": "date", "envoyé": "date",
    "subject": "subject", "件名": "subject", "betreff": "subject", "objet": "subject",
    "to": "to", "宛先": "to", "an": "to", "à": "to",
    "cc": "cc",
    "reply-to": "reply_to",
}  # fmt: skip

_FIELD_LINE = re.compile(r"^\s*[*>]*\s*([^\s:：*][^:：]{0,20}?)\s*[*]*\s*[:：]\s*[*]*\s*(.*)$")


def is_owner(sender: Address | None, owner_addresses: set[str]) -> bool:
    """True when `sender` is the mailbox the stream watches (or a colleague on the same, non-free-mail domain).

    With no known owner address, any sender counts (older events carry no stream address).
    """
    if sender is None:
        return False
    if not owner_addresses:
        return True
    address = sender.address.lower()
    if address in owner_addresses:
        return True
    domain = address.rpartition("@")[2]
    owner_domains = {a.rpartition("@")[2] for a in owner_addresses}
    return domain in owner_domains and domain not in FREE_MAIL_DOMAINS


def detect_forward(parsed: ParsedMail, owner_addresses: set[str] | None = None) -> ForwardInfo | None:
    """The forward or redirect this mail is, or None when it came straight from the customer."""
    owners = {a.lower() for a in (owner_addresses or set())}
    if is_owner(parsed.from_, owners):
        found = _attached(parsed) or _inline(parsed)
        if found is not None and found.original_from.address.lower() not in owners:
            return found
    return _redirect(parsed, owners)


# --- redirects ------------------------------------------------------------------------------------------------


def _redirect(parsed: ParsedMail, owners: set[str]) -> ForwardInfo | None:
    if parsed.from_ is None:
        return None
    resent = parsed.header("Resent-From") or parsed.header("Resent-Sender")
    if resent:
        by = _first_address(resent)
        return ForwardInfo(
            method="redirect", by=by, original_from=parsed.from_, original_date=parsed.date,
            original_subject=parsed.subject, detected_by="resent-headers",
        )  # fmt: skip
    forwarded_for = parsed.header("X-Forwarded-For")
    if forwarded_for or parsed.header("X-Forwarded-To"):
        by = _first_address(forwarded_for or "")
        return ForwardInfo(
            method="redirect", by=by, original_from=parsed.from_, original_date=parsed.date,
            original_subject=parsed.subject, detected_by="x-forwarded-headers",
        )  # fmt: skip
    # A redirect that leaves no header (Outlook/Exchange redirect rules, Sieve `redirect`): the mail is addressed to
    # the stream's own address, yet it arrived at the forwarding address.
    addressed = {a.address.lower() for a in [*parsed.to, *parsed.cc]}
    matched = sorted(addressed & owners)
    if matched and parsed.from_.address.lower() not in owners:
        return ForwardInfo(
            method="redirect", by=Address(address=matched[0]), original_from=parsed.from_, original_date=parsed.date,
            original_subject=parsed.subject, detected_by="addressed-to-stream",
        )  # fmt: skip
    return None


def _first_address(value: str) -> Address | None:
    match = EMAIL.search(value)
    if match is None:
        return None
    pairs = getaddresses([value])
    for name, address in pairs:
        if address.lower() == match.group(0).lower():
            return Address(name=name, address=address)
    return Address(address=match.group(0))


# --- attached message/rfc822 --------------------------------------------------------------------------------


def _attached(parsed: ParsedMail) -> ForwardInfo | None:
    if not parsed.attached_messages:
        return None
    inner = parsed.attached_messages[0]
    inner_from, inner_subject, inner_date = _inner_headers(inner)
    if inner_from is None:
        return None
    looks_forwarded = bool(_FORWARD_SUBJECT.match(parsed.subject)) or (
        inner_subject is not None and inner_subject.strip() and inner_subject.strip() in parsed.subject
    )
    if not looks_forwarded and len(parsed.text.strip()) > 2000:
        return None
    return ForwardInfo(
        method="forward_attached", by=parsed.from_, original_from=inner_from, original_date=inner_date,
        original_subject=inner_subject, detected_by="attached-message",
    )  # fmt: skip


def _inner_headers(inner: Message) -> tuple[Address | None, str | None, datetime | None]:
    raw_from = str(inner.get("From") or "")
    # As for the outer From: an encoded word in the name (`=?utf-8?q?a=0D=0ABcc:_x@y?=`) never splits the address.
    inner_from = next(iter(parse_addresses(raw_from, "From", None, [])), None)
    subject = inner.get("Subject")
    subject_text = header_to_text(str(subject), "Subject")[0] if subject is not None else None
    date = None
    if inner.get("Date"):
        try:
            date = parsedate_to_datetime(str(inner.get("Date")))
        except (TypeError, ValueError, IndexError):
            date = None
    if date is not None and date.tzinfo is None:
        date = date.replace(tzinfo=UTC)
    return inner_from, subject_text, date


# --- inline forwards ----------------------------------------------------------------------------------------


def _inline(parsed: ParsedMail) -> ForwardInfo | None:
    for text in _texts(parsed):
        found = find_inline_forward(text)
        if found is not None:
            rule, fields = found
            sender = parse_sender(fields.get("from", ""))
            if sender is None:
                continue
            return ForwardInfo(
                method="forward_inline",
                by=parsed.from_,
                original_from=sender,
                original_date=parse_loose_date(fields.get("date", "")),
                original_subject=fields.get("subject"),
                detected_by=rule,
            )
    return None


def _texts(parsed: ParsedMail) -> list[str]:
    texts = [parsed.text] if parsed.text else []
    if parsed.html:
        texts.append(html_to_text(parsed.html))
    return texts


def find_inline_forward(text: str) -> tuple[str, dict[str, str]] | None:
    """The first forwarded header block in `text`: (rule name, {from, date, subject, to, cc})."""
    lines = text.replace("\r\n", "\n").split("\n")
    for index, line in enumerate(lines):
        stripped = line.strip().lstrip(">").strip()
        for marker in MARKERS:
            if marker.pattern.match(stripped):
                fields = _field_block(lines, index + 1)
                if "from" in fields:
                    return marker.name, fields
        # Outlook desktop without a separator line: a block that opens with "From:" and has "Sent:".
        if _label_of(stripped) == "from" and index > 0:
            fields = _field_block(lines, index)
            if "from" in fields and any(
                _label_word(lines[i]) in ("sent", "送信日時") for i in range(index, min(index + 6, len(lines)))
            ):
                return "outlook-desktop", fields
    return None


def _label_word(line: str) -> str | None:
    match = _FIELD_LINE.match(line.strip().lstrip(">").strip())
    return match.group(1).strip().lower() if match else None


def _label_of(line: str) -> str | None:
    word = _label_word(line)
    return FIELD_LABELS.get(word) if word else None


def _field_block(lines: list[str], start: int) -> dict[str, str]:
    """Read 'Label: value' lines (tolerating blank lines before, tabs, bold markers and wrapped values)."""
    fields: dict[str, str] = {}
    index = start
    while index < len(lines) and not lines[index].strip().lstrip(">").strip():
        index += 1
    last: str | None = None
    for line in lines[index : index + 16]:
        stripped = line.strip().lstrip(">").strip()
        if not stripped:
            if fields:
                break
            continue
        match = _FIELD_LINE.match(stripped)
        key = FIELD_LABELS.get(match.group(1).strip().lower()) if match else None
        if key is not None and match is not None:
            if key not in fields:
                fields[key] = match.group(2).strip()
                last = key
            continue
        # A wrapped value (long To: lists, Gmail's HTML-to-text line breaks) continues the previous field.
        if last is not None and (last in ("to", "cc") or (last == "from" and "@" not in fields["from"])):
            fields[last] += " " + stripped
            continue
        break
    return fields


def parse_sender(value: str) -> Address | None:
    """'Name <addr>', 'Name [mailto:addr]', '"Name" <mailto:addr>', 'addr' -> Address; None without an address."""
    value = value.strip()
    match = EMAIL.search(value)
    if match is None:
        return None
    address = match.group(0)
    name = value[: match.start()]
    name = re.sub(r"(\[mailto:|<mailto:|<|\[|\()\s*$", "", name).strip().strip('"').strip("'").strip()
    if name.lower() == address.lower():
        name = ""
    return Address(name=name, address=address)


_JP_DATE = re.compile(
    r"(\d{4})\s*年\s*(\d{1,2})\s*月\s*(\d{1,2})\s*日(?:\s*[(（][^)）]*[)）])?\s*(?:(\d{1,2}):(\d{2})(?::(\d{2}))?)?\s*(JST|GMT[+-]\d+|[+-]\d{4})?"
)
_EN_FORMATS = (
    "%A, %B %d, %Y %I:%M %p",
    "%A, %B %d, %Y %I:%M:%S %p",
    "%a, %b %d, %Y %I:%M %p",
    "%a, %b %d, %Y at %I:%M %p",
    "%a, %b %d, %Y at %H:%M",
    "%B %d, %Y at %I:%M:%S %p",
    "%B %d, %Y at %I:%M %p",
    "%B %d, %Y at %H:%M",
    "%d %B %Y at %H:%M",
    "%A, %d %B %Y %H:%M",
    "%A, %B %d, %Y %H:%M",
    "%Y-%m-%d %H:%M",
    "%Y/%m/%d %H:%M",
)
_TZ_SUFFIX = re.compile(r"\s*(?:GMT|UTC)\s*([+-])(\d{1,2})(?::?(\d{2}))?\s*$|\s*(JST|UTC|GMT)\s*$")


def parse_loose_date(value: str) -> datetime | None:
    """Dates as forwarding clients print them; the zone defaults to UTC (JST for Japanese formats)."""
    value = value.strip().replace("\u202f", " ")
    if not value:
        return None
    if not re.search(r"(?i)\b[AP]M\b", value):  # the RFC 5322 parser would silently drop a PM
        try:
            parsed = parsedate_to_datetime(value)
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
        except (TypeError, ValueError, IndexError):
            pass
    match = _JP_DATE.search(value)
    if match:
        year, month, day, hour, minute, second, zone = match.groups()
        tz = _zone(zone) or timezone(timedelta(hours=9))
        try:
            return datetime(
                int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0), tzinfo=tz
            )
        except ValueError:
            return None
    tz = UTC
    zone_match = _TZ_SUFFIX.search(value)
    if zone_match:
        if zone_match.group(4):
            tz = _zone(zone_match.group(4)) or UTC
        else:
            sign = -1 if zone_match.group(1) == "-" else 1
            tz = timezone(sign * timedelta(hours=int(zone_match.group(2)), minutes=int(zone_match.group(3) or 0)))
        value = value[: zone_match.start()].strip()
    for fmt in _EN_FORMATS:
        try:
            return datetime.strptime(value, fmt).replace(tzinfo=tz)
        except ValueError:
            continue
    return None


def _zone(name: str | None) -> timezone | None:
    if not name:
        return None
    if name == "JST":
        return timezone(timedelta(hours=9))
    if name in ("UTC", "GMT"):
        return UTC
    match = re.match(r"(?:GMT)?([+-])(\d{1,2}):?(\d{2})?$", name)
    if match:
        sign = -1 if match.group(1) == "-" else 1
        hours = int(match.group(2))
        minutes = int(match.group(3) or 0)
        if len(match.group(2)) == 2 and match.group(3) is None and name[0] in "+-" and len(name) == 5:
            hours, minutes = int(name[1:3]), int(name[3:5])
        return timezone(sign * timedelta(hours=hours, minutes=minutes))
    return None


# --- the customer's words of a forward-as-attachment ------------------------------------------------------------


@dataclass(frozen=True)
class CustomerWords:
    """What an agent reads for a mail forwarded as an attachment: the attached message's text and HTML, and the
    forwarder's note kept apart."""

    text: str
    html: str | None
    note: str
    warnings: tuple[str, ...] = ()


def attached_customer_words(parsed: ParsedMail, forwarded: ForwardInfo | None) -> CustomerWords | None:
    """The attached message's text when `forwarded` came from it; None otherwise (or when it cannot be read)."""
    if forwarded is None or forwarded.method != "forward_attached" or not parsed.attached_messages:
        return None
    try:
        inner_bytes = parsed.attached_messages[0].as_bytes()
    except Exception as exc:  # an attached message the stdlib cannot serialise again: keep the outer text
        return CustomerWords(parsed.text, parsed.html, "", (f"attached message unreadable: {type(exc).__name__}",))
    inner = parse_mail(inner_bytes)
    if not inner.text.strip() and not (inner.html or "").strip():
        return None
    warnings = tuple(f"attached message: {w}" for w in inner.warnings)
    return CustomerWords(inner.text, inner.html, parsed.text.strip(), warnings)
