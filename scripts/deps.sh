#!/usr/bin/env bash
# Make sure, idempotently, that everything Mailstream needs on this machine is installed and running:
#   - Debian packages: rabbitmq-server, postfix (smtp-sink/smtp-source), swaks, dnsmasq, DKIM/SPF verifiers,
#     chromium (the console's browser tests)
#   - RabbitMQ running on 127.0.0.1:5672          (skipped when AMQP_URL is set)
#   - SecantusDB on 127.0.0.1:27017               (skipped when MONGODB_URI is set), in its own tool environment
#   - uv, and the project's Python environment from uv.lock
# Prints nothing on stdout but `export` lines for the servers it started (and SECANTUSD_BIN, the SecantusDB binary),
# so callers may `eval "$(deps.sh)"`.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${MAILSTREAM_CACHE:-$HOME/.cache/mailstream}"
STATE="${MAILSTREAM_STATE:-$CACHE/state}"
SECANTUS_VERSION="${SECANTUS_VERSION:-0.7.0b3}"
SECANTUS_PORT="${SECANTUS_PORT:-27017}"
SECANTUS_DATA="${SECANTUS_DATA:-$STATE/secantusdb}"
mkdir -p "$CACHE" "$STATE"

say() { echo "deps: $*" >&2; }

wait_for_port() {  # host port seconds what
  local deadline=$((SECONDS + $3))
  until (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; do
    if ((SECONDS > deadline)); then say "$4 did not open $1:$2 within $3 s"; return 1; fi
    sleep 0.3
  done
}

ensure_uv() {
  if ! command -v uv >/dev/null 2>&1; then
    say "installing uv"
    python3 -m pip install -q uv >&2
  fi
}

# chromium and fonts-noto-cjk: the console's browser test (tests/e2e/test_console_browser.py) drives Debian's
# Chromium; the CJK fonts render Japanese mail in it.
apt_packages=(rabbitmq-server postfix swaks dnsmasq-base opendkim-tools libmail-dkim-perl libmail-spf-perl curl jq openssl
  chromium fonts-noto-cjk)
apt_packages+=(prometheus)  # for promtool: the chart's alert rules are unit-tested (tests/deploy/test_monitoring.py)
missing=()
for p in "${apt_packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  # Installing must not start daemons we do not use (postfix on port 25, dnsmasq on 53).
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
  rm -f /usr/sbin/policy-rc.d
fi

# --- RabbitMQ -----------------------------------------------------------------------------------------------
if [[ -z "${AMQP_URL:-}" ]]; then
  if ! rabbitmq-diagnostics -q check_port_connectivity >/dev/null 2>&1; then
    say "starting rabbitmq-server"
    (RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 rabbitmq-server -detached >&2) || true
    wait_for_port 127.0.0.1 5672 120 rabbitmq
    rabbitmq-diagnostics -q --timeout 60 check_running >&2
  fi
  # Per-queue metrics on :15692 (rabbitmq_prometheus): the chart's dashboard and alerts read them, and
  # tests/deploy/test_monitoring.py checks their names against a real scrape.
  if ! (exec 3<>"/dev/tcp/127.0.0.1/15692") 2>/dev/null; then
    say "enabling rabbitmq_prometheus"
    rabbitmq-plugins -q enable rabbitmq_prometheus >&2
    wait_for_port 127.0.0.1 15692 60 rabbitmq_prometheus
  fi
  echo "export AMQP_URL=amqp://guest:guest@127.0.0.1:5672/"
fi

# --- SecantusDB (MongoDB wire protocol on WiredTiger) -------------------------------------------------------
# Development, CI and the one-machine default only; production points MONGODB_URI at real MongoDB. SecantusDB is
# GPL-2.0 and beta, so it lives in a tool environment of its own under the cache and is run as a separate process:
# no service imports it or lists it as a dependency.
if [[ -z "${MONGODB_URI:-}" ]]; then
  SECANTUS_ENV="$CACHE/secantusdb-$SECANTUS_VERSION"
  if [[ ! -f "$SECANTUS_ENV/.installed" ]]; then
    say "installing SecantusDB $SECANTUS_VERSION into $SECANTUS_ENV"
    ensure_uv
    rm -rf "$SECANTUS_ENV"
    UV_PYTHON_DOWNLOADS=never uv venv -q --python python3 "$SECANTUS_ENV" >&2
    VIRTUAL_ENV="$SECANTUS_ENV" uv pip install -q "secantusdb==$SECANTUS_VERSION" >&2
    touch "$SECANTUS_ENV/.installed"  # only a finished install counts
  fi
  if ! (exec 3<>"/dev/tcp/127.0.0.1/$SECANTUS_PORT") 2>/dev/null; then
    # Journal synced on every commit: a write the services were told is durable survives kill -9 of the server.
    say "starting SecantusDB on 127.0.0.1:$SECANTUS_PORT (data in $SECANTUS_DATA)"
    mkdir -p "$SECANTUS_DATA"
    nohup "$SECANTUS_ENV/bin/secantusd-py" --host 127.0.0.1 --port "$SECANTUS_PORT" \
      --storage-path "$SECANTUS_DATA" --sync-on-commit --log-level WARNING \
      >"$STATE/secantusdb.log" 2>&1 &
    echo $! > "$STATE/secantusdb.pid"
    wait_for_port 127.0.0.1 "$SECANTUS_PORT" 120 secantusdb
  fi
  # retryWrites=false: SecantusDB 0.7's retryable-write bookkeeping scans its session records on every write (the
  # sender ran 7-9x slower with it, docs/benchmarks.md). Every consumer is idempotent and retried by the broker, so
  # a failed write is redone anyway; production MongoDB keeps the driver's default.
  echo "export MONGODB_URI=mongodb://127.0.0.1:$SECANTUS_PORT/?retryWrites=false"
  # For tests that run a SecantusDB of their own (tests/reliability kills one with -9 and restarts it).
  echo "export SECANTUSD_BIN=$SECANTUS_ENV/bin/secantusd-py"
fi

# --- Python environment ------------------------------------------------------------------------------------
ensure_uv
(cd "$ROOT" && UV_PYTHON_DOWNLOADS=never uv sync --frozen --all-packages -q >&2)

# --- AsyncAPI parser (validates docs/asyncapi.json; tests/common/test_asyncapi.py) -----------------------------
# From tools/asyncapi/package-lock.json, without install scripts; reinstalled only when the lock changes, so a
# machine that has it needs no network.
ASYNCAPI_TOOLS="$ROOT/tools/asyncapi"
if command -v npm >/dev/null 2>&1; then
  lock_sum="$(sha256sum "$ASYNCAPI_TOOLS/package-lock.json" | cut -d' ' -f1)"
  if [[ "$(cat "$ASYNCAPI_TOOLS/node_modules/.mailstream-lock" 2>/dev/null)" != "$lock_sum" ]]; then
    say "installing the AsyncAPI parser (npm ci in tools/asyncapi)"
    (cd "$ASYNCAPI_TOOLS" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >&2)
    echo "$lock_sum" > "$ASYNCAPI_TOOLS/node_modules/.mailstream-lock"
  fi
else
  say "npm not found: the AsyncAPI validation test will fail until Node.js and npm are installed"
fi
