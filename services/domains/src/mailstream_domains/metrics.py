"""Prometheus metrics of the domains service."""

from prometheus_client import Counter

CHECKS = Counter(
    "mailstream_domains_record_checks_total",
    "DNS record checks, by record purpose and resulting status",
    ["purpose", "status"],
)
DOMAIN_EVENTS = Counter(
    "mailstream_domains_events_total", "domain.changed events, by change and outcome", ["change", "outcome"]
)
VERIFIER_ROUNDS = Counter("mailstream_domains_verifier_rounds_total", "Background verifier rounds", ["outcome"])
