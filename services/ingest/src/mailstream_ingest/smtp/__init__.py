"""ingest's front door: SMTP in, `MailReceived` out (the service's API)."""
