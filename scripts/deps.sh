#!/usr/bin/env bash
# Make sure, idempotently, that everything Mailstream needs on this machine is installed and running:
#   - Debian packages: rabbitmq-server, postfix (smtp-sink/smtp-source), swaks, dnsmasq, DKIM/SPF verifiers
#   - RabbitMQ running on 127.0.0.1:5672          (skipped when AMQP_URL is set)
#   - FerretDB v1 (SQLite) on 127.0.0.1:27017     (skipped when MONGODB_URI is set), built once with Go and cached
#   - uv, and the project's Python environment from uv.lock
# Prints nothing on stdout but `export` lines for the servers it started, so callers may `eval "$(deps.sh)"`.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${MAILSTREAM_CACHE:-$HOME/.cache/mailstream}"
STATE="${MAILSTREAM_STATE:-$CACHE/state}"
FERRETDB_VERSION="${FERRETDB_VERSION:-v1.24.0}"
FERRETDB_BIN="$CACHE/ferretdb-$FERRETDB_VERSION/ferretdb"
mkdir -p "$CACHE" "$STATE"

say() { echo "deps: $*" >&2; }

wait_for_port() {  # host port seconds what
  local deadline=$((SECONDS + $3))
  until (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; do
    if ((SECONDS > deadline)); then say "$4 did not open $1:$2 within $3 s"; return 1; fi
    sleep 0.3
  done
}

apt_packages=(rabbitmq-server postfix swaks dnsmasq-base opendkim-tools libmail-dkim-perl libmail-spf-perl curl jq openssl)
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
  echo "export AMQP_URL=amqp://guest:guest@127.0.0.1:5672/"
fi

# --- FerretDB (MongoDB wire protocol over SQLite) ---------------------------------------------------------
build_ferretdb() {
  say "building FerretDB $FERRETDB_VERSION from the Go module proxy (once; cached in $CACHE)"
  local dir src
  dir="$(go mod download -json "github.com/FerretDB/FerretDB@$FERRETDB_VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')"
  src="$(mktemp -d)"
  cp -r "$dir/." "$src"
  chmod -R u+w "$src"
  # cmd/ferretdb panics at start without build/version/version.txt, which the module zip does not carry.
  echo "$FERRETDB_VERSION" > "$src/build/version/version.txt"
  mkdir -p "$(dirname "$FERRETDB_BIN")"
  (cd "$src" && go build -trimpath -tags ferretdb_no_postgresql -o "$FERRETDB_BIN.tmp" ./cmd/ferretdb >&2)
  mv "$FERRETDB_BIN.tmp" "$FERRETDB_BIN"
  rm -rf "$src"
}

if [[ -z "${MONGODB_URI:-}" ]]; then
  [[ -x "$FERRETDB_BIN" ]] || build_ferretdb
  if ! (exec 3<>/dev/tcp/127.0.0.1/27017) 2>/dev/null; then
    say "starting FerretDB on 127.0.0.1:27017 (data in $STATE/ferretdb)"
    mkdir -p "$STATE/ferretdb"
    nohup "$FERRETDB_BIN" --handler=sqlite --sqlite-url="file:$STATE/ferretdb/" --state-dir="$STATE" \
      --listen-addr=127.0.0.1:27017 --debug-addr=127.0.0.1:27018 --telemetry=disable --log-level=warn \
      >"$STATE/ferretdb.log" 2>&1 &
    echo $! > "$STATE/ferretdb.pid"
    wait_for_port 127.0.0.1 27017 60 ferretdb
  fi
  echo "export MONGODB_URI=mongodb://127.0.0.1:27017/"
fi

# --- Python environment ------------------------------------------------------------------------------------
if ! command -v uv >/dev/null 2>&1; then
  say "installing uv"
  python3 -m pip install -q uv >&2
fi
(cd "$ROOT" && UV_PYTHON_DOWNLOADS=never uv sync --frozen --all-packages -q >&2)
