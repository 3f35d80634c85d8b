"""Inbox's own Prometheus metrics of stored mail and kept dead letters (the gateway's request histogram is in api/middleware.py)."""

from datetime import UTC, datetime

from prometheus_client import Counter, Gauge, Histogram

RECEIVED_TO_STORED_SECONDS = Histogram(
    "mailstream_inbox_received_to_stored_seconds",
    "From ingest's 250 (the mail's received_at) to the mail stored in its conversation, per newly stored mail",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
)
# One series per stream that receives mail (stream ids only: no account name or address), so an alert can tell a
# stream that went quiet (its forwarding broke) from one that never received.
MAILS_STORED = Counter(
    "mailstream_inbox_mails_stored_total", "Inbound mails newly stored, by stream (not history imports)", ["stream_id"]
)

DEAD_LETTERS = Gauge(
    "mailstream_dead_letters",
    "Dead letters waiting for an operator (state dead), per queue they died in",
    ["queue"],
)
DEAD_LETTERS_KEPT = Counter(
    "mailstream_dead_letters_kept_total",
    "Copies the dead-letter keeper took off <queue>.dead, by outcome (kept, died_again, duplicate)",
    ["queue", "outcome"],
)

RETENTION_REMOVED = Counter(
    "mailstream_inbox_retention_removed_total",
    "What retention erased, by the service that removed it and the kind of record",
    ["service", "kind"],
)


def seconds_since(received_at: datetime, now: datetime) -> float:
    """Elapsed seconds, never negative (clocks of two hosts may disagree a little); a naive time is UTC."""
    if received_at.tzinfo is None:
        received_at = received_at.replace(tzinfo=UTC)
    return max(0.0, (now - received_at).total_seconds())


def record_stored(stream_id: str, received_at: datetime, now: datetime) -> None:
    RECEIVED_TO_STORED_SECONDS.observe(seconds_since(received_at, now))
    MAILS_STORED.labels(stream_id).inc()
