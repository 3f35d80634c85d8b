"""Mailstream domains: DKIM keys, the SPF/DKIM/DMARC records a sending domain publishes, and their live DNS
verification (see README.md)."""
