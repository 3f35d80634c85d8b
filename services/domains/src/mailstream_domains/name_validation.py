"""Which names an account may register as a sending domain.

A sending domain must be a name the account can publish DNS records for: a registrable domain under the Public
Suffix List (acme.com, acme.co.uk) or a subdomain of one (mails.acme.com). Public suffixes (com, co.uk,
github.io) and the domains of free-mail and shared mail providers (gmail.com, outlook.com, yahoo.*) are refused:
nobody but the provider can publish SPF or DKIM records there.
"""

import ipaddress
import re
from functools import lru_cache

from publicsuffixlist import PublicSuffixList

MUST_OWN = "you must own the domain to publish records for it"

# Registrable domains of free-mail and shared mailbox providers (exact names).
FREE_MAIL_DOMAINS: frozenset[str] = frozenset(
    {
        "gmail.com", "googlemail.com", "outlook.com", "live.com", "msn.com", "passport.com", "icloud.com",
        "me.com", "mac.com", "aol.com", "aim.com", "proton.me", "protonmail.com", "protonmail.ch", "pm.me",
        "mail.ru", "inbox.ru", "list.ru", "bk.ru", "qq.com", "foxmail.com", "163.com", "126.com", "yeah.net",
        "sina.com", "sohu.com", "naver.com", "daum.net", "hanmail.net", "zoho.com", "zohomail.com", "gmx.net",
        "web.de", "t-online.de", "freenet.de", "mail.com", "email.com", "tutanota.com", "tuta.io", "fastmail.com",
        "hey.com", "rediffmail.com", "libero.it", "laposte.net", "orange.fr", "free.fr", "wanadoo.fr",
        "rambler.ru", "seznam.cz", "ya.ru", "rocketmail.com", "ymail.com", "att.net", "comcast.net",
        "verizon.net", "mailinator.com", "guerrillamail.com",
    }
)  # fmt: skip

# Providers that run the same mail service under many public suffixes: hotmail.co.uk, yahoo.co.jp, gmx.de ...
FREE_MAIL_BRANDS: frozenset[str] = frozenset({"hotmail", "yahoo", "gmx", "yandex", "live", "outlook"})

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


class DomainNameError(ValueError):
    """The name cannot be a sending domain; the message says why, for a person."""


@lru_cache(maxsize=1)
def _psl() -> PublicSuffixList:
    return PublicSuffixList()


def registrable_domain(name: str) -> str | None:
    """acme.com for mails.acme.com; None for a public suffix itself."""
    return _psl().privatesuffix(name)


def normalise_domain_name(raw: str) -> str:
    """The ASCII (IDNA) lower-case form of a domain a customer typed, or `DomainNameError` with the reason."""
    name = raw.strip().rstrip(".").lower()
    if not name:
        raise DomainNameError("a domain name is required")
    if "@" in name:
        raise DomainNameError("enter the domain only (acme.com), not an email address")
    if "://" in name or "/" in name or ":" in name:
        raise DomainNameError("enter the domain only (acme.com), not a URL")
    try:
        ipaddress.ip_address(name)
    except ValueError:
        pass
    else:
        raise DomainNameError("an IP address is not a domain")
    try:
        name = name.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise DomainNameError(f"not a valid domain name ({exc})") from None
    if len(name) > 253:
        raise DomainNameError("a domain name has at most 253 characters")
    labels = name.split(".")
    if len(labels) < 2:
        raise DomainNameError("enter a full domain such as acme.com")
    for label in labels:
        if not _LABEL.match(label):
            raise DomainNameError(
                f"{label!r} is not a valid DNS label (letters, digits and inner hyphens, 1 to 63 characters)"
            )
    return name


def validate_sending_domain(raw: str) -> str:
    """Normalise `raw` and check that an account can own it; returns the name to store."""
    name = normalise_domain_name(raw)
    registrable = registrable_domain(name)
    if registrable is None:
        raise DomainNameError(f"{name} is a public suffix, not a domain anyone can register; {MUST_OWN}")
    public_suffix = _psl().publicsuffix(registrable) or ""
    brand = registrable[: -len(public_suffix) - 1] if public_suffix else registrable
    if registrable in FREE_MAIL_DOMAINS or brand in FREE_MAIL_BRANDS:
        raise DomainNameError(f"{registrable} is a free-mail or shared mail domain: {MUST_OWN}")
    return name
