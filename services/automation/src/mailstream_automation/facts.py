"""The plain facts a rule looks at, built from a stored message (or from a sample in a dry run).

Rules never see the broker contract itself: one small immutable value keeps evaluation pure and lets the dry-run
endpoint and the tests build the very same input.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from mailstream_common.contracts import MessageStored

BODY_LIMIT = 100_000
"""Characters of the body a rule looks at: conditions stay fast on huge mails (the broker copy is truncated too)."""


@dataclass(frozen=True)
class Facts:
    from_address: str = ""
    from_name: str = ""
    to: tuple[str, ...] = ()
    cc: tuple[str, ...] = ()
    subject: str = ""
    body: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    """(lower-case name, value) pairs in order; a name may repeat."""
    has_attachment: bool = False
    is_first_message: bool = False
    authentication: dict[str, str] = field(default_factory=dict)
    received_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def from_domain(self) -> str:
        return self.from_address.rpartition("@")[2] if "@" in self.from_address else ""

    def header_values(self, name: str) -> list[str]:
        wanted = name.lower()
        return [value for header_name, value in self.headers if header_name == wanted]


def build_facts(
    *,
    from_address: str | None,
    from_name: str = "",
    to: Iterable[str] = (),
    cc: Iterable[str] = (),
    subject: str = "",
    body: str = "",
    headers: Iterable[tuple[str, str]] = (),
    has_attachment: bool = False,
    is_first_message: bool = False,
    authentication: dict[str, str] | None = None,
    received_at: datetime | None = None,
) -> Facts:
    """Normalise once: addresses lower-cased, header names lower-cased, times aware (naive means UTC)."""
    when = received_at or datetime.now(UTC)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return Facts(
        from_address=(from_address or "").strip().lower(),
        from_name=from_name or "",
        to=tuple(a.strip().lower() for a in to if a),
        cc=tuple(a.strip().lower() for a in cc if a),
        subject=subject or "",
        body=(body or "")[:BODY_LIMIT],
        headers=tuple((name.strip().lower(), value or "") for name, value in headers),
        has_attachment=has_attachment,
        is_first_message=is_first_message,
        authentication={k: (v or "none").lower() for k, v in (authentication or {}).items()},
        received_at=when,
    )


def facts_from_message(event: MessageStored) -> Facts:
    return build_facts(
        from_address=event.from_.address if event.from_ else None,
        from_name=event.from_.name if event.from_ else "",
        to=[a.address for a in event.to],
        cc=[a.address for a in event.cc],
        subject=event.subject,
        body=event.text,
        headers=[(h.name, h.value) for h in event.headers],
        has_attachment=event.has_attachment,
        is_first_message=event.is_first_message,
        authentication={
            "spf": event.authentication.spf,
            "dkim": event.authentication.dkim,
            "dmarc": event.authentication.dmarc,
        },
        received_at=event.received_at,
    )
