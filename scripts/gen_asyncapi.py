"""Write docs/asyncapi.json, the broker contract as AsyncAPI 3.0, from the contracts and the topology.

Run: uv run --frozen python scripts/gen_asyncapi.py   (tests/common/test_asyncapi.py fails when the file is stale;
the gateway serves the same document at /asyncapi.json, built by mailstream_common.asyncapi)
"""

import sys
from pathlib import Path

from mailstream_common.asyncapi import document_json

DOC = Path(__file__).resolve().parent.parent / "docs" / "asyncapi.json"

if __name__ == "__main__":
    DOC.write_text(document_json())
    print(f"wrote {DOC}", file=sys.stderr)
