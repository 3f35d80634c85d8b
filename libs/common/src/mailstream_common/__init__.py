"""What every Mailstream service shares.

- `settings`: configuration from environment variables (pydantic-settings)
- `contracts`: one versioned pydantic model per event or command travelling over RabbitMQ
- `topology`: exchange, queue and routing-key names, declared in one place
- `broker`: a confirming publisher and a consumer runner with retry, dead-lettering and graceful shutdown
- `mongo`: one async client per process, index bootstrap, the idempotent-write pattern
- `logs`, `metrics`, `ops`: JSON logs with a correlation id, Prometheus metrics, /healthz /readyz /metrics
- `service`: the start-up and graceful-shutdown frame every service's `main` runs in
"""
