"""One module per queue ingest consumes, each a thin translation from the message to the core."""
