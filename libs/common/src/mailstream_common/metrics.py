"""Prometheus metrics shared by every service (service-specific ones live in the service)."""

from prometheus_client import Counter, Histogram

MESSAGES_PUBLISHED = Counter(
    "mailstream_broker_published_total", "Messages published to RabbitMQ", ["event", "outcome"]
)
PUBLISH_CONFIRM_SECONDS = Histogram(
    "mailstream_broker_publish_confirm_seconds",
    "Time from publish to broker confirm",
    ["event"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
MESSAGES_CONSUMED = Counter(
    "mailstream_broker_consumed_total",
    "Messages handled by a consumer, by outcome (ack, retry, dead, requeued)",
    ["queue", "outcome"],
)
HANDLE_SECONDS = Histogram(
    "mailstream_broker_handle_seconds",
    "Time a consumer spent on one message",
    ["queue"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
DATABASE_COMMAND_SECONDS = Histogram(
    "mailstream_database_command_seconds",
    "Round trip of one database command (driver to server and back), by command and collection",
    ["command", "collection"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
DATABASE_COMMAND_FAILURES = Counter(
    "mailstream_database_command_failures_total",
    "Database commands answered with an error or a write error (a duplicate key too), by command and collection",
    ["command", "collection"],
)
