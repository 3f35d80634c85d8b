#!/bin/sh
# Start the Mailstream service this image was built for (MAILSTREAM_SERVICE, set from the SERVICE build arg).
#
# Outside containers every listener defaults to 127.0.0.1; inside one that would be unreachable, so each listener
# host defaults to 0.0.0.0 here unless the environment already says otherwise.
# With arguments, run those instead (e.g. `mailstream accounts create --name Acme` in the inbox image).
set -eu

: "${MAILSTREAM_SERVICE:?MAILSTREAM_SERVICE is not set (the image was built without --build-arg SERVICE)}"

export OPS_HOST="${OPS_HOST:-0.0.0.0}"
case "$MAILSTREAM_SERVICE" in
  ingest) export INGEST_SMTP_HOST="${INGEST_SMTP_HOST:-0.0.0.0}" ;;
  inbox) export INBOX_HTTP_HOST="${INBOX_HTTP_HOST:-0.0.0.0}" ;;
  domains) export DOMAINS_HTTP_HOST="${DOMAINS_HTTP_HOST:-0.0.0.0}" ;;
  automation) export AUTOMATION_HTTP_HOST="${AUTOMATION_HTTP_HOST:-0.0.0.0}" ;;
  sender) export SENDER_HTTP_HOST="${SENDER_HTTP_HOST:-0.0.0.0}" ;;
  *) echo "unknown MAILSTREAM_SERVICE: $MAILSTREAM_SERVICE" >&2; exit 64 ;;
esac

if [ "$#" -gt 0 ]; then
  exec "$@"
fi
exec python -m "mailstream_${MAILSTREAM_SERVICE}"
