"""Mail a provider sends to confirm a forwarding address, and Mailstream's own forwarding check coming back.

Recognising them lets the admin finish the set-up from the stream's page instead of reading raw mail.
"""

import re

from mailstream_common.contracts.forwarding_check import FORWARDING_TEST_HEADER, FORWARDING_TEST_TOKEN
from mailstream_common.contracts.mail import ProviderConfirmation

from .parsing import EMAIL, ParsedMail, html_to_text

_TEST_TOKEN = FORWARDING_TEST_TOKEN
_TOKEN_ONLY = re.compile(r"^[A-Za-z0-9_-]{8,128}$")

_URL = re.compile(r"https?://[^\s<>\"')\]]+")

# Gmail: "(#123456789) Gmail Forwarding Confirmation - Receive Mail from someone@gmail.com", and in Japanese
# "(#123456789) Gmail の転送の確認 - someone@gmail.com からメールを受信".
_GMAIL_SUBJECT = re.compile(r"^\(#(\d{6,12})\)\s*Gmail")
_GMAIL_CODE = re.compile(r"(?:Confirmation code|確認コード)\s*[:：]\s*(\d{6,12})")
_GMAIL_LINK = re.compile(
    r"https://(?:mail-settings\.google\.com|mail\.google\.com|isolated\.mail\.google\.com)/mail/[^\s<>\"')\]]+"
)

_GENERIC_SUBJECT = re.compile(
    r"(?i)(forward|forwarding|転送).{0,40}(confirm|verif|確認|認証)|(confirm|verif|確認|認証).{0,40}(forward|forwarding|転送)"
)
_GENERIC_CODE = re.compile(r"(?i)(?:code|コード)\s*(?:is)?\s*[:：]?\s*([A-Za-z0-9]{4,12})\b")
_SYSTEM_SENDER = re.compile(
    r"(?i)^(?:[a-z0-9.-]*-)?(?:no-?reply|do-?not-?reply|noreply|mailer|verify|verification|account-?security"
    r"|accounts?|notifications?|forwarding)(?:[-.][a-z0-9.-]*)?@"
)
_PROVIDERS = {
    "google.com": "gmail",
    "yahoo-inc.com": "yahoo",
    "yahoo.com": "yahoo",
    "yahoo.co.jp": "yahoo_japan",
    "microsoft.com": "outlook",
    "outlook.com": "outlook",
    "zoho.com": "zoho",
    "zohomail.com": "zoho",
    "zohoaccounts.com": "zoho",
    "fastmail.com": "fastmail",
    "icloud.com": "icloud",
    "apple.com": "icloud",
}


def _body(parsed: ParsedMail) -> str:
    text = parsed.text or ""
    if parsed.html:
        text += "\n" + parsed.html + "\n" + html_to_text(parsed.html)
    return text


def _provider(sender_domain: str) -> str | None:
    for domain, provider in _PROVIDERS.items():
        if sender_domain == domain or sender_domain.endswith("." + domain):
            return provider
    return None


def detect_provider_confirmation(parsed: ParsedMail) -> ProviderConfirmation | None:
    sender = parsed.from_.address.lower() if parsed.from_ else ""
    sender_domain = sender.rpartition("@")[2]
    body = _body(parsed)
    subject = parsed.subject or ""

    gmail_subject = _GMAIL_SUBJECT.match(subject)
    if gmail_subject or (_provider(sender_domain) == "gmail" and _GMAIL_CODE.search(body)):
        code_match = _GMAIL_CODE.search(body)
        code = gmail_subject.group(1) if gmail_subject else (code_match.group(1) if code_match else None)
        link = _GMAIL_LINK.search(body)
        requested = re.search(rf"({EMAIL.pattern})", subject.partition(" - ")[2]) or re.search(
            rf"({EMAIL.pattern})\s+(?:has requested|から)", body
        )
        return ProviderConfirmation(
            provider="gmail",
            code=code,
            link=link.group(0) if link else None,
            requested_by=requested.group(1) if requested else None,
        )

    if not _GENERIC_SUBJECT.search(subject):
        return None
    provider = _provider(sender_domain)
    if provider is None or not _SYSTEM_SENDER.match(sender):
        # Anyone can write such a subject, and customers write from these providers' domains too: only the
        # providers' own robots count. (Inbox records a confirmation on the stream instead of storing a message.)
        return None
    code = _GENERIC_CODE.search(body)
    links = [u for u in _URL.findall(body) if any(w in u.lower() for w in ("verif", "confirm", "forward"))]
    requested = re.search(rf"({EMAIL.pattern})", subject)
    return ProviderConfirmation(
        provider=provider,
        code=code.group(1) if code else None,
        link=links[0] if links else None,
        requested_by=requested.group(1) if requested else None,
    )


def detect_forwarding_test(parsed: ParsedMail) -> str | None:
    """The token of Mailstream's forwarding check: in its header (redirected) or its body text (forwarded)."""
    for value in parsed.header_values(FORWARDING_TEST_HEADER):
        token = value.strip()
        if _TOKEN_ONLY.match(token):
            return token
    found = _TEST_TOKEN.search(_body(parsed)) or _TEST_TOKEN.search(parsed.subject or "")
    if found:
        return found.group(1)
    for inner in parsed.attached_messages:
        value = str(inner.get(FORWARDING_TEST_HEADER) or "").strip()
        if _TOKEN_ONLY.match(value):
            return value
    return None
