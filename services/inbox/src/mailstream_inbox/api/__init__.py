"""The public HTTP API: shared dependencies, pagination, errors, and one router per resource in `routes/`."""
