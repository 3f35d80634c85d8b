"""Ingest's own Prometheus metrics (broker-level ones come from mailstream_common.metrics)."""

from prometheus_client import Counter, Gauge, Histogram

SMTP_SESSIONS = Counter("mailstream_ingest_smtp_sessions_total", "SMTP connections accepted by the listener")
SMTP_SESSIONS_ACTIVE = Gauge("mailstream_ingest_smtp_sessions_active", "SMTP sessions open now")
MAILS_ACCEPTED = Counter("mailstream_ingest_mails_accepted_total", "Mails answered 250 after the broker confirm")
MAIL_BYTES = Counter("mailstream_ingest_mail_bytes_total", "Bytes of accepted mails")
REFUSED = Counter(
    "mailstream_ingest_refused_total",
    "Refused commands or mails, by reason",
    ["reason"],
)
DURABLE_CONFIRM_SECONDS = Histogram(
    "mailstream_ingest_durable_confirm_seconds",
    "From the end of DATA to the broker's confirm (what the 250 waits for)",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
ANALYSED = Counter("mailstream_ingest_analysed_total", "Mails analysed, by outcome", ["outcome"])
AUTH_RESULTS = Counter("mailstream_ingest_auth_results_total", "Inbound authentication results", ["method", "result"])
DOWNSTREAM_BACKLOG = Gauge(
    "mailstream_ingest_downstream_backlog_messages", "Messages waiting in a queue ingest feeds (last read)", ["queue"]
)
BACKLOG_REFUSING = Gauge(
    "mailstream_ingest_backlog_refusing", "1 while new mail is refused with 451 because the backlog is above the limit"
)
