"""Never auto-reply to mail that is itself automatic: the guard against mail loops and reply storms.

Follows RFC 3834 (Auto-Submitted), the de-facto Precedence and List-* headers, Microsoft's
X-Auto-Response-Suppress, and common autoresponder markers; also refuses null, daemon and no-reply senders, whose
replies would bounce or go nowhere.
"""

from collections.abc import Sequence
from typing import Any

from mailstream_common.contracts.conversations import AutoReplyAction

from .facts import Facts

_DAEMON_LOCAL_PARTS = {"mailer-daemon", "postmaster", "mail-daemon", "mailerdaemon"}
_NO_REPLY_LOCAL_PARTS = {"noreply", "no-reply", "no_reply", "donotreply", "do-not-reply", "do_not_reply"}
_BULK_PRECEDENCE = {"bulk", "junk", "list"}
_AUTORESPONDER_HEADERS = ("x-autoreply", "x-autorespond", "x-autoresponder", "x-auto-reply")
_SUPPRESS_VALUES = {"all", "oof", "autoreply"}


def _first_token(value: str) -> str:
    return value.split(";", 1)[0].strip().lower()


def automatic_mail_reason(facts: Facts) -> str | None:
    """Why this mail must not get an auto-reply, as a short code with detail; None when a reply is fine."""
    for value in facts.header_values("auto-submitted"):
        kind = _first_token(value)
        if kind and kind != "no":
            return f"auto_submitted: Auto-Submitted: {kind}"
    for value in facts.header_values("precedence"):
        if _first_token(value) in _BULK_PRECEDENCE:
            return f"precedence: Precedence: {_first_token(value)}"
    if facts.header_values("list-id"):
        return "mailing_list: List-Id present"
    for name in _AUTORESPONDER_HEADERS:
        if facts.header_values(name):
            return f"autoresponder: {name} present"
    for value in facts.header_values("x-auto-response-suppress"):
        if {token.strip().lower() for token in value.split(",")} & _SUPPRESS_VALUES:
            return f"suppressed: X-Auto-Response-Suppress: {value.strip()}"
    if any(value.strip() == "<>" for value in facts.header_values("return-path")):
        return "null_sender: Return-Path <>"
    if not facts.from_address or "@" not in facts.from_address:
        return "null_sender: no From address"
    local_part = facts.from_address.rpartition("@")[0]
    if local_part in _DAEMON_LOCAL_PARTS:
        return f"daemon_sender: {facts.from_address}"
    if local_part in _NO_REPLY_LOCAL_PARTS or local_part.startswith(("noreply", "no-reply")):
        return f"no_reply_sender: {facts.from_address}"
    return None


def split_auto_reply(actions: Sequence[Any], skip_reason: str | None) -> tuple[list[Any], list[dict[str, str]]]:
    """The actions to request, and the auto-replies held back with their reason (when there is one)."""
    if skip_reason is None:
        return list(actions), []
    kept = [a for a in actions if not isinstance(a, AutoReplyAction)]
    skipped = [{"type": "auto_reply", "reason": skip_reason} for a in actions if isinstance(a, AutoReplyAction)]
    return kept, skipped
