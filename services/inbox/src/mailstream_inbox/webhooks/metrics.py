"""The webhook dispatcher's Prometheus metrics, served on its /metrics."""

from prometheus_client import Counter, Histogram

ATTEMPTS = Counter(
    "mailstream_webhooks_attempts_total",
    "HTTP attempts by outcome (succeeded, failed: an error status, refused: SSRF, error: timeout or connection)",
    ["outcome"],
)
ATTEMPT_SECONDS = Histogram(
    "mailstream_webhooks_attempt_seconds",
    "Time of one HTTP attempt, refusals excluded",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30),
)
DELIVERIES = Counter(
    "mailstream_webhooks_deliveries_total",
    "Deliveries by how they ended (delivered, failed: the schedule spent or the subscription gone or disabled)",
    ["outcome"],
)
SUBSCRIPTIONS_DISABLED = Counter(
    "mailstream_webhooks_subscriptions_disabled_total", "Subscriptions the dispatcher disabled for failing too long"
)
