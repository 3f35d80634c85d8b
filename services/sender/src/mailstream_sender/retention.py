"""Retention of `sender_deliveries` and `sender_mails`: pure rules; the deleting is the server's (TTL indexes on
`expires_at`, see `repositories/`).

What a final (`sent`/`failed`) record protects, and so how long it must live:

- exactly-once: a copy of its command that arrives again (broker redelivery after a crash, the twin left by a
  retry republish whose ack was lost, inbox re-publishing its outbox) finds it and is re-reported, not re-sent.
  Such copies come within minutes; the last copy of a command that keeps being retried comes within its maximum
  age (`SENDER_MAX_AGE_SECONDS`) plus one retry tier (the largest, an hour): the smallest retention allowed.
- belt and braces: a command older than the retention is refused, never sent (`is_past_retention`, a guard step),
  so even a copy that turns up later than that cannot be sent twice: a record can only have expired if it became
  final more than the retention ago, hence after its command was created more than the retention ago.
- bounce attribution: a bounce (a DSN to the VERP address) names only the message; the record gives its account
  and recipients. Hard failures come back within minutes or hours; a DSN later than the retention (e.g. a remote
  MTA's give-up after days of temporary failures) is logged and not counted towards a suppression. The default,
  72 hours, is the default maximum age (48 h) plus a day.

Records that are not final (`sending`, `deferred`) have no expiry: their commands are still being worked on. A
mail's bytes are stored before its record is final, so their expiry is set to outlive the record: a record is final
at the latest the maximum age plus one retry tier after its mail was stored, and expires the retention after that.
"""

from datetime import datetime, timedelta

from mailstream_common.topology import SENDER_REPLIES

RETRY_MARGIN_SECONDS = max(SENDER_REPLIES.retry_delays)
"""The longest a command waits on a retry tier: after the maximum age, one last copy may still be on its way."""


def minimum_retention_hours(max_age_seconds: float) -> float:
    return (max_age_seconds + RETRY_MARGIN_SECONDS) / 3600


def is_past_retention(occurred_at: datetime, now: datetime, retention_hours: float) -> bool:
    """True when a command is so old that its delivery record, had there been one, may have expired."""
    return occurred_at < now - timedelta(hours=retention_hours)


def record_expires_at(final_at: datetime, retention_hours: float) -> datetime:
    """When a record that became final at `final_at` may go."""
    return final_at + timedelta(hours=retention_hours)


def mail_expires_at(stored_at: datetime, retention_hours: float, max_age_seconds: float) -> datetime:
    """When a mail stored at `stored_at` may go: not before its record (final by then, plus the retention)."""
    return stored_at + timedelta(hours=retention_hours + minimum_retention_hours(max_age_seconds))
