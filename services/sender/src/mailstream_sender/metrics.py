"""The sender's Prometheus metrics, served on /metrics."""

from prometheus_client import Counter, Histogram

OUTCOMES = Counter("mailstream_sender_outcomes_total", "Reply commands by outcome", ["outcome"])
SIGN_SECONDS = Histogram(
    "mailstream_sender_sign_seconds",
    "Time to DKIM-sign one mail",
    buckets=(0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05),
)
SMTP_SECONDS = Histogram(
    "mailstream_sender_smtp_seconds",
    "Time of one SMTP transaction with the relay",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30),
)
RECORD_WRITE_SECONDS = Histogram(
    "mailstream_sender_record_write_seconds",
    "Time of one delivery write: begin (sending), mail (the signed bytes, once per mail) or finish (the outcome)",
    ["step"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
CACHE_LOOKUPS = Counter(
    "mailstream_sender_cache_lookups_total",
    "Cache lookups by cache and result (hit, shared, miss)",
    ["cache", "result"],
)
CACHE_INVALIDATIONS = Counter(
    "mailstream_sender_cache_invalidations_total", "Invalidations applied (entry and load in flight dropped)", ["cache"]
)
