"""console/openapi.json, from which the console's TypeScript types are generated, is the gateway's public OpenAPI
document as the apps describe it now: a contract change shows up here (regenerate it with
`uv run --frozen python scripts/console_openapi.py`) and then in the console's type check, not in its users."""

import importlib.util
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def load_script():
    spec = importlib.util.spec_from_file_location("console_openapi", ROOT / "scripts" / "console_openapi.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_console_snapshot_is_the_current_public_openapi() -> None:
    script = load_script()
    current = script.render(script.public_openapi())
    snapshot = (ROOT / "console" / "openapi.json").read_text(encoding="utf-8")
    assert snapshot == current, "console/openapi.json is stale: run uv run --frozen python scripts/console_openapi.py"


def test_the_snapshot_holds_every_path_the_console_calls() -> None:
    """The console uses only public paths: each one it names in its sources is in the public document."""
    document = json.loads((ROOT / "console" / "openapi.json").read_text(encoding="utf-8"))
    files = [p for p in (ROOT / "console" / "src").rglob("*.ts") if not p.name.endswith((".test.ts", ".d.ts"))]
    sources = "\n".join(p.read_text(encoding="utf-8") for p in files)
    called = set(re.findall(r'"(/v1/[^"?]*)"', sources))
    assert {"/v1/me", "/v1/conversations", "/v1/events", "/v1/domains"} <= called
    assert called <= set(document["paths"]), called - set(document["paths"])
