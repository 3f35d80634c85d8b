"""Pydantic types for API payloads whose values end up in mail headers or need a normal form.

A CR or LF in a subject, a display name or an address would let a caller inject headers into outgoing mail, and NUL
breaks both MIME and logs: such values are refused with 422 naming the field, never cleaned up silently.
"""

import re
from typing import Annotated

from pydantic import AfterValidator, StringConstraints

_FORBIDDEN = re.compile(r"[\r\n\x00]")
# Deliberately conservative: what a mail provider would accept as a mailbox on its forwarding page.
_LOCAL_PART = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+$")
_DOMAIN_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


def _header_safe(value: str) -> str:
    if _FORBIDDEN.search(value):
        raise ValueError("must not contain line breaks (CR/LF) or NUL characters")
    return value


def normalise_email_address(value: str) -> str:
    """`Local@Example.COM` -> `Local@example.com`; raises ValueError on anything that is not a plain mailbox."""
    value = _header_safe(value.strip())
    if len(value) > 254 or value.count("@") != 1:
        raise ValueError("must be one email address such as support@acme.com")
    local, domain = value.split("@")
    if not local or len(local) > 64 or not _LOCAL_PART.match(local) or ".." in local:
        raise ValueError("the part before '@' is not a valid mailbox name")
    if local.startswith(".") or local.endswith("."):
        raise ValueError("the part before '@' is not a valid mailbox name")
    try:
        ascii_domain = domain.encode("idna").decode("ascii").lower()
    except UnicodeError as exc:
        raise ValueError("the domain is not a valid host name") from exc
    labels = ascii_domain.rstrip(".").split(".")
    if len(labels) < 2 or not all(_DOMAIN_LABEL.match(label) for label in labels) or labels[-1].isdigit():
        raise ValueError("the domain is not a valid host name")
    return f"{local}@{'.'.join(labels)}"


HeaderSafeStr = Annotated[str, AfterValidator(_header_safe)]
"""Any text that may be written into a mail header (subject, display name, tag shown in a header...)."""

EmailAddressStr = Annotated[str, StringConstraints(max_length=320), AfterValidator(normalise_email_address)]
"""A single mailbox address, validated, with the domain lower-cased (the local part keeps its case)."""
