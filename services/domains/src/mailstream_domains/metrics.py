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
SIGNING_KEY_READS = Counter(
    "mailstream_domains_signing_key_reads_total",
    "Reads of a DKIM private key through /internal/signing-key, by calling service and outcome (found, missing)",
    ["caller", "outcome"],
)
RECORDS_LOST = Counter(
    "mailstream_domains_records_lost_total",
    "A record that was verified and is not any more (deleted or changed in DNS), by purpose (dkim, spf, dmarc, ...)",
    ["purpose"],
)
