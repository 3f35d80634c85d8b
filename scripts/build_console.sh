#!/usr/bin/env bash
# Build the reference console (console/) into console/dist, which the gateway serves at /console.
# npm ci from console/package-lock.json (the npm registry only; nothing is fetched at run time), the API types
# generated from console/openapi.json, a type check, the unit tests (vitest), then the Vite build. Skipped when
# nothing the build reads changed since the last successful build (a hash of those files in console/.build-stamp);
# --force rebuilds.
# Refresh console/openapi.json after an API change with: uv run --frozen python scripts/console_openapi.py
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CONSOLE="$ROOT/console"
STAMP="$CONSOLE/.build-stamp"

say() { echo "console: $*" >&2; }

sources_hash() {
  (cd "$CONSOLE" && find index.html package.json package-lock.json openapi.json tsconfig.json vite.config.ts src \
    -type f ! -name schema.d.ts -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)
}

if ! command -v npm >/dev/null 2>&1; then
  say "npm is not installed (Node.js 20+ is needed to build the console; scripts/deps.sh installs it)"
  exit 1
fi

want="$(sources_hash)"
if [[ "${1:-}" != "--force" && -f "$STAMP" && "$(cat "$STAMP")" == "$want" && -f "$CONSOLE/dist/index.html" ]]; then
  say "up to date"
  exit 0
fi

cd "$CONSOLE"
lock_hash="$(sha256sum package-lock.json | cut -d' ' -f1)"
if [[ ! -d node_modules || "$(cat node_modules/.lock-hash 2>/dev/null)" != "$lock_hash" ]]; then
  say "installing packages (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error >&2
  echo "$lock_hash" > node_modules/.lock-hash
fi
say "building"
npm run --silent build >&2
echo "$want" > "$STAMP"
say "built into console/dist"
