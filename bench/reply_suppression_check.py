"""What the suppression check costs a reply: `POST /v1/conversations/{id}/replies` asks the sender whether each
recipient is suppressed (one `GET /v1/suppressions/{address}` from the gateway to the sender per recipient).

    eval "$(scripts/deps.sh)" && uv run python bench/reply_suppression_check.py [--rounds 200]

The whole system runs as processes (`tests/e2e/conftest.running_system`: five services, smtp-sink as relay) on a
private vhost and database. Per round, interleaved over one keep-alive connection each:
- reply: `POST .../replies` (one recipient: the check is one sender call inside it);
- lookup: `GET /v1/suppressions/{address}` through the gateway: that same sender call plus the gateway's own
  authentication and forwarding, so an upper bound of what the check adds;
- read: `GET /v1/conversations/{id}` through the gateway: authentication and one read, the floor of any request.
(lookup - read) estimates the sender call alone. Printed as a markdown table; the ratio is to the reply.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import httpx  # noqa: E402
from soak import TempDirs  # noqa: E402

from tests.e2e.conftest import running_system  # noqa: E402
from tests.e2e.scenarios_support import new_account, new_stream, smtp_send, wait_for_conversation  # noqa: E402
from tests.support.backends import provide  # noqa: E402

CUSTOMER = "bench.customer@example.net"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    options = parser.parse_args()
    amqp = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
    mongodb_uri = os.environ.get("MONGODB_URI", "mongodb://127.0.0.1:27017/")
    with (
        provide(amqp, mongodb_uri) as backends,
        tempfile.TemporaryDirectory(prefix="bench-suppression-") as logs,
        running_system(backends, TempDirs(Path(logs)), "supbench", {"LOG_LEVEL": "WARNING"}) as system,
    ):
        account, _ = new_account(system, "Bench")
        api = httpx.Client(
            base_url=system.gateway, headers={"Authorization": f"Bearer {account['api_key']}"}, timeout=60
        )
        stream = new_stream(api, "support@bench.test")
        mail = EmailMessage()
        mail["From"] = f"Customer <{CUSTOMER}>"
        mail["To"] = "support@bench.test"
        mail["Subject"] = "Bench conversation"
        mail["Message-ID"] = make_msgid(domain="example.net")
        mail.set_content("Hello")
        smtp_send(system, mail, mail_from=CUSTOMER, rcpt=stream["forwarding_address"])
        conversation = wait_for_conversation(api, stream["id"], "Bench conversation", timeout=60)

        requests = {
            "reply (POST .../replies, 1 recipient)": lambda: api.post(
                f"/v1/conversations/{conversation['id']}/replies", json={"text": "Hi", "apply_template": False}
            ),
            "lookup (GET /v1/suppressions/{address})": lambda: api.get(f"/v1/suppressions/{CUSTOMER}"),
            "read (GET /v1/conversations/{id})": lambda: api.get(f"/v1/conversations/{conversation['id']}"),
        }
        expected = {"reply": 202, "lookup": 404, "read": 200}
        timings: dict[str, list[float]] = {name: [] for name in requests}
        for round_ in range(options.warmup + options.rounds):
            for name, call in requests.items():
                started = time.perf_counter()
                response = call()
                elapsed = time.perf_counter() - started
                assert response.status_code == expected[name.split()[0]], (name, response.status_code, response.text)
                if round_ >= options.warmup:
                    timings[name].append(elapsed)
        print(f"\n{options.rounds} rounds after {options.warmup} warm-up, {backends.description}\n")
        print("| request | p50 ms | p99 ms | mean ms |")
        print("| --- | --- | --- | --- |")
        for name, values in timings.items():
            print(
                f"| {name} | {statistics.median(values) * 1000:.1f} | {percentile(values, 0.99) * 1000:.1f} "
                f"| {statistics.fmean(values) * 1000:.1f} |"
            )
        reply, lookup, read = (statistics.median(v) for v in timings.values())
        print(f"\nlookup / reply (p50): {lookup / reply:.2f}x; (lookup - read) / reply: {(lookup - read) / reply:.2f}x")


if __name__ == "__main__":
    main()
