"""Container health probe: exit 0 when the service answers 200 on its ops port, else 1.

`healthcheck.py` checks /healthz (alive: the image's HEALTHCHECK); `healthcheck.py /readyz` checks readiness
(broker, database and listeners usable: what compose's `depends_on: condition: service_healthy` waits for).

Standard library only (it runs inside the slim image). The ops port follows the same environment variable the
service itself reads, so an overridden port is still checked.
"""

import os
import sys
import urllib.request

# service -> (environment variable naming its ops/HTTP port, default port); see the brief's port table.
OPS_PORTS = {
    "ingest": ("INGEST_OPS_PORT", 8101),
    "inbox": ("INBOX_HTTP_PORT", 8000),
    "domains": ("DOMAINS_HTTP_PORT", 8102),
    "automation": ("AUTOMATION_HTTP_PORT", 8103),
    "sender": ("SENDER_HTTP_PORT", 8104),
}


def probe_url(service: str, environ: dict[str, str], path: str = "/healthz") -> str:
    variable, default = OPS_PORTS[service]
    return f"http://127.0.0.1:{environ.get(variable, default)}{path}"


def main(argv: list[str]) -> int:
    path = argv[1] if len(argv) > 1 else "/healthz"
    service = os.environ.get("MAILSTREAM_SERVICE", "")
    if service not in OPS_PORTS:
        print(f"healthcheck: unknown MAILSTREAM_SERVICE {service!r}", file=sys.stderr)
        return 1
    url = probe_url(service, dict(os.environ), path)
    try:
        with urllib.request.urlopen(url, timeout=4) as response:  # noqa: S310 - fixed http://127.0.0.1 URL
            return 0 if response.status == 200 else 1
    except OSError as error:  # refused, timed out, or an HTTP error status
        print(f"healthcheck {url}: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
