"""Write the gateway's public OpenAPI document (the one `GET /openapi.json` serves) to a file, without a running
stack: the inbox app's own document merged with the public paths of domains, automation and sender, exactly as the
gateway merges them (`proxy.merge_openapi`). The console generates its TypeScript types from it.

Usage: uv run --frozen python scripts/console_openapi.py [console/openapi.json]
"""

import json
import sys
from pathlib import Path
from typing import Any

from mailstream_automation.api.app import create_app as automation_app
from mailstream_automation.settings import AutomationSettings
from mailstream_domains.api.app import create_app as domains_app
from mailstream_inbox.api.app import create_app as inbox_app
from mailstream_inbox.api.routes.proxy import UPSTREAMS, merge_openapi
from mailstream_inbox.settings import InboxSettings
from mailstream_sender.api.app import create_app as sender_app

DEFAULT_OUTPUT = Path(__file__).resolve().parent.parent / "console" / "openapi.json"


def public_openapi() -> dict[str, Any]:
    # Only the apps' routes and documents are read: nothing is called, so no back-end is needed.
    upstreams = {
        "domains": domains_app(object(), {}, {}),  # type: ignore[arg-type]
        "automation": automation_app(AutomationSettings(), None, {}),  # type: ignore[arg-type]
        "sender": sender_app(None, {}, {}),  # type: ignore[arg-type]
    }
    document = inbox_app(InboxSettings()).openapi()
    for upstream in UPSTREAMS:
        document = merge_openapi(document, upstream, upstreams[upstream.name].openapi())
    return document


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    output = Path(argv[1]) if len(argv) > 1 else DEFAULT_OUTPUT
    output.write_text(render(public_openapi()), encoding="utf-8")
    print(f"wrote {output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
