"""Outgoing webhooks: per-account subscriptions (served by the gateway's `/v1/webhooks` routes) and the
dispatcher that signs and delivers them (`python -m mailstream_inbox.webhooks`, its own Deployment).

Pure core: `payloads` (facts -> webhook events), `signing` (Standard Webhooks, secrets at rest), `schedule`
(backoff), `destinations` (SSRF). Shells: `repositories`, `sending` (HTTP), `dispatcher` (consumers), `main`.
"""
