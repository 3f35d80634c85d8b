#!/usr/bin/env bash
# Run the whole system on this machine: RabbitMQ, SecantusDB with its journal synced on commit (scripts/deps.sh), or
# the servers AMQP_URL / MONGODB_URI name, a local SMTP sink as the outbound smarthost (unless SENDER_SMTP_HOST is
# set), and all five services.
# Logs go to .state/logs/<service>.log; Ctrl-C (or SIGTERM) shuts every service down gracefully.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
eval "$("$ROOT/scripts/deps.sh")"
cd "$ROOT"

STATE="$ROOT/.state"
mkdir -p "$STATE/logs" "$STATE/outbox"
# Dev secrets, made once per checkout (a line missing from an older file is added; existing ones are kept, so the
# DKIM keys already stored stay readable); production sets these from a secret store. Each calling service has its
# own token; receivers are given only its SHA-256 (see libs/common/src/mailstream_common/service_auth.py).
(umask 077 && touch "$STATE/dev.env")
python3 - "$STATE/dev.env" <<'PY'
import base64, hashlib, os, secrets, sys

path = sys.argv[1]
lines = [line for line in open(path).read().splitlines() if line and not line.startswith("MAILSTREAM_INTERNAL_TOKEN=")]
values = dict(line.split("=", 1) for line in lines)
for name in ("MAILSTREAM_GATEWAY_TOKEN", "MAILSTREAM_SENDER_TOKEN", "MAILSTREAM_VERP_SECRET"):
    values.setdefault(name, secrets.token_urlsafe(32))
values.setdefault("DOMAINS_KEY_ENCRYPTION_KEY", base64.urlsafe_b64encode(os.urandom(32)).decode())
for name in ("MAILSTREAM_GATEWAY_TOKEN", "MAILSTREAM_SENDER_TOKEN"):
    values[name + "_SHA256"] = hashlib.sha256(values[name].encode()).hexdigest()
with open(os.open(path, os.O_WRONLY | os.O_TRUNC, 0o600), "w") as out:
    out.writelines(f"{name}={value}\n" for name, value in values.items())
PY
set -a
# shellcheck disable=SC1091
source "$STATE/dev.env"
set +a

pids=()
stop_all() {
  trap - INT TERM EXIT
  echo "run: stopping services" >&2
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop_all INT TERM EXIT

if [[ -z "${SENDER_SMTP_HOST:-}" ]]; then
  export SENDER_SMTP_HOST=127.0.0.1 SENDER_SMTP_PORT="${SENDER_SMTP_PORT:-2526}"
  # Postfix's smtp-sink accepts everything and keeps each mail as a file: the outbox to look at in development.
  # As root it insists on -u; staying root keeps the files writable in .state (whose parents may be private).
  sink_user=()
  if [[ $EUID -eq 0 ]]; then sink_user=(-u root); fi
  /usr/sbin/smtp-sink "${sink_user[@]}" -d "$STATE/outbox/%Y%m%d%H%M%S." "$SENDER_SMTP_HOST:$SENDER_SMTP_PORT" 64 &
  pids+=($!)
fi

for service in domains automation inbox sender ingest; do
  uv run --frozen python -m "mailstream_$service" >>"$STATE/logs/$service.log" 2>&1 &
  pids+=($!)
done

wait_ready() {  # name url
  for _ in $(seq 1 300); do
    if curl -fsS "$2" >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  echo "run: $1 is not ready; see $STATE/logs/$1.log" >&2
  return 1
}
wait_ready inbox "http://${INBOX_HTTP_HOST:-127.0.0.1}:${INBOX_HTTP_PORT:-8000}/readyz"
wait_ready ingest "http://127.0.0.1:${INGEST_OPS_PORT:-8101}/readyz"
wait_ready domains "http://127.0.0.1:${DOMAINS_HTTP_PORT:-8102}/readyz"
wait_ready automation "http://127.0.0.1:${AUTOMATION_HTTP_PORT:-8103}/readyz"
wait_ready sender "http://127.0.0.1:${SENDER_HTTP_PORT:-8104}/readyz"

cat <<INFO
Mailstream is running.
  HTTP API gateway   http://${INBOX_HTTP_HOST:-127.0.0.1}:${INBOX_HTTP_PORT:-8000}   (OpenAPI: /openapi.json, docs: /docs)
  SMTP ingest        ${INGEST_SMTP_HOST:-127.0.0.1}:${INGEST_SMTP_PORT:-2525}   (ops: http://127.0.0.1:${INGEST_OPS_PORT:-8101}/healthz)
  domains            http://127.0.0.1:${DOMAINS_HTTP_PORT:-8102}/healthz (internal)
  automation         http://127.0.0.1:${AUTOMATION_HTTP_PORT:-8103}/healthz (internal)
  sender             http://127.0.0.1:${SENDER_HTTP_PORT:-8104}/healthz (internal)
  outbound relay     $SENDER_SMTP_HOST:$SENDER_SMTP_PORT (dev sink writes to $STATE/outbox)
  RabbitMQ           $AMQP_URL
  MongoDB protocol   $MONGODB_URI
  logs               $STATE/logs/
Create an account: uv run mailstream accounts create --name Acme
Press Ctrl-C to stop.
INFO
wait -n "${pids[@]}" || true
echo "run: a service exited; stopping the rest (see $STATE/logs)" >&2
