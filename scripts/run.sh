#!/usr/bin/env bash
# Run the whole system on this machine: RabbitMQ, SecantusDB with its journal synced on commit (scripts/deps.sh), or
# the servers AMQP_URL / MONGODB_URI name, a local SMTP sink as the outbound smarthost (unless SENDER_SMTP_HOST is
# set), and all five services.
# scripts/supervise.py then keeps them running as the cluster would: a service that exits is restarted with backoff
# (said on the terminal and in the logs); everything stops on Ctrl-C (or SIGTERM), gracefully, or when a service
# keeps failing at start-up. Logs go to .state/logs/<service>.log, the supervisor's own lines to .state/logs/run.log.
# Ports and URLs follow the services' own variables (INBOX_HTTP_PORT, INGEST_SMTP_PORT, SENDER_SMTP_PORT, ...), so a
# second copy can run beside the first; MAILSTREAM_RUN_STATE moves .state elsewhere.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
eval "$("$ROOT/scripts/deps.sh")"
cd "$ROOT"
# The reference console served at /console: rebuilt only when its sources changed. Without it the API runs anyway
# (and /console says how to build it).
"$ROOT/scripts/build_console.sh" || echo "run: the console was not built (see above); the API runs without it" >&2

STATE="${MAILSTREAM_RUN_STATE:-$ROOT/.state}"
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

# Every port the services listen on, and the URLs by which they call each other, from the same variables.
export INBOX_HTTP_HOST="${INBOX_HTTP_HOST:-127.0.0.1}" INBOX_HTTP_PORT="${INBOX_HTTP_PORT:-8000}"
export INGEST_SMTP_HOST="${INGEST_SMTP_HOST:-127.0.0.1}" INGEST_SMTP_PORT="${INGEST_SMTP_PORT:-2525}"
export INGEST_OPS_PORT="${INGEST_OPS_PORT:-8101}" DOMAINS_HTTP_PORT="${DOMAINS_HTTP_PORT:-8102}"
export AUTOMATION_HTTP_PORT="${AUTOMATION_HTTP_PORT:-8103}" SENDER_HTTP_PORT="${SENDER_HTTP_PORT:-8104}"
export WEBHOOKS_OPS_PORT="${WEBHOOKS_OPS_PORT:-8105}"
export DOMAINS_URL="${DOMAINS_URL:-http://127.0.0.1:$DOMAINS_HTTP_PORT}"
export AUTOMATION_URL="${AUTOMATION_URL:-http://127.0.0.1:$AUTOMATION_HTTP_PORT}"
export SENDER_URL="${SENDER_URL:-http://127.0.0.1:$SENDER_HTTP_PORT}"

relay=""  # "sink": run Postfix's smtp-sink as the outbound relay
relay_note="your smarthost"
if [[ -z "${SENDER_SMTP_HOST:-}" ]]; then
  export SENDER_SMTP_HOST=127.0.0.1 SENDER_SMTP_PORT="${SENDER_SMTP_PORT:-2526}"
  relay="sink" relay_note="dev sink writes to $STATE/outbox"
fi

# The banner the supervisor prints once every service is ready.
RUN_BANNER="$(cat <<INFO
Mailstream is running.
  HTTP API gateway   http://$INBOX_HTTP_HOST:$INBOX_HTTP_PORT   (OpenAPI: /openapi.json, docs: /docs)
  agent console      http://$INBOX_HTTP_HOST:$INBOX_HTTP_PORT/console/
  SMTP ingest        $INGEST_SMTP_HOST:$INGEST_SMTP_PORT   (ops: http://127.0.0.1:$INGEST_OPS_PORT/healthz)
  domains            http://127.0.0.1:$DOMAINS_HTTP_PORT/healthz (internal)
  automation         http://127.0.0.1:$AUTOMATION_HTTP_PORT/healthz (internal)
  sender             http://127.0.0.1:$SENDER_HTTP_PORT/healthz (internal)
  webhook dispatcher http://127.0.0.1:$WEBHOOKS_OPS_PORT/healthz (internal)
  outbound relay     $SENDER_SMTP_HOST:$SENDER_SMTP_PORT ($relay_note)
  RabbitMQ           $AMQP_URL
  MongoDB protocol   $MONGODB_URI
  logs               $STATE/logs/ (the supervisor's: run.log)
Create an account: uv run mailstream accounts create --name Acme
Press Ctrl-C to stop.
INFO
)"

# What to supervise. The services run on the environment's own python, not under `uv run`: the supervised process
# must be the service itself, so that its exit status is the service's and a stop signal reaches it directly.
PYTHON="$ROOT/.venv/bin/python"
"$PYTHON" - "$STATE" "$relay" "$RUN_BANNER" >"$STATE/run.json" <<'PY'
import json, os, shutil, sys

state, relay, banner = sys.argv[1:4]
env = os.environ
services = []
if relay:
    # Postfix's smtp-sink accepts everything and keeps each mail as a file: the outbox to look at in development.
    # As root it insists on -u; staying root keeps the files writable in .state (whose parents may be private).
    user = ["-u", "root"] if os.geteuid() == 0 else []
    sink = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
    address = f"{env['SENDER_SMTP_HOST']}:{env['SENDER_SMTP_PORT']}"
    services.append({
        "name": "relay",
        "command": [sink, *user, "-d", f"{state}/outbox/%Y%m%d%H%M%S.", address, "64"],
        "ready": {"tcp": address},
    })
ops_ports = {
    "domains": env["DOMAINS_HTTP_PORT"],
    "automation": env["AUTOMATION_HTTP_PORT"],
    "inbox": env["INBOX_HTTP_PORT"],
    "sender": env["SENDER_HTTP_PORT"],
    "ingest": env["INGEST_OPS_PORT"],
}
for name, port in ops_ports.items():
    host = env["INBOX_HTTP_HOST"] if name == "inbox" else "127.0.0.1"
    services.append({
        "name": name,
        "command": [sys.executable, "-m", f"mailstream_{name}"],
        "ready": {"http": f"http://{host}:{port}/readyz"},
    })
# The webhook dispatcher: a separate process of the inbox package (any number of replicas in production).
services.append({
    "name": "webhooks",
    "command": [sys.executable, "-m", "mailstream_inbox.webhooks"],
    "ready": {"http": f"http://127.0.0.1:{env['WEBHOOKS_OPS_PORT']}/readyz"},
})
grace = float(env.get("SHUTDOWN_GRACE_SECONDS", "20")) + 5  # the services' own drain, and a margin to exit
json.dump({"log_dir": f"{state}/logs", "grace_seconds": grace, "banner": banner, "services": services}, sys.stdout)
PY
exec "$PYTHON" "$ROOT/scripts/supervise.py" "$STATE/run.json"
