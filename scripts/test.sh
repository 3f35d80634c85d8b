#!/usr/bin/env bash
# Run the whole test suite on this machine from scratch: installs and starts what the tests need
# (scripts/deps.sh: RabbitMQ, SecantusDB, Postfix tools, dnsmasq, DKIM/SPF verifiers, the Python environment),
# then pytest. Extra arguments go to pytest, e.g. `scripts/test.sh tests/inbox -x`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
eval "$("$ROOT/scripts/deps.sh")"
cd "$ROOT"
# pytest exits 5 when it collected no test: that is a failure here, never a pass.
exec uv run --frozen pytest "$@"
