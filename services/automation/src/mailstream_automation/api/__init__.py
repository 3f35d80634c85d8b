"""The automation HTTP API: the public `/v1/automation/...` paths, reached only through the gateway."""
