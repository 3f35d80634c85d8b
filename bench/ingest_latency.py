"""Time from ingest's `250` to the message being readable through the gateway, with the whole system running.

All five services run as real processes (private RabbitMQ vhost, own database). Sender threads with reused SMTP
connections send mails with unique subjects at a fixed total rate; the gateway's SSE stream (`GET /v1/events`)
reports `message.received` once inbox has stored the message, which is when it is readable over the API. The
latency of a mail is SSE arrival minus the moment its `250` came back.

    eval "$(scripts/deps.sh)" && uv run python bench/ingest_latency.py [--rate 5] [--seconds 20] [--threads 2]
"""

import argparse
import contextlib
import json
import os
import smtplib
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx
from pymongo import MongoClient

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

sys.path.insert(0, str(ROOT / "bench"))
from ingest_smtp import vhost  # noqa: E402

from tests.support.processes import ServiceProcess, free_port  # noqa: E402
from tests.support.service_tokens import service_env  # noqa: E402


def start_system(amqp_url: str, mongodb_uri: str, database: str, log_dir: Path) -> tuple[dict, dict, list]:
    ports = {name: free_port() for name in ("smtp", "ingest", "inbox", "domains", "automation", "sender", "relay")}
    env = {
        "AMQP_URL": amqp_url, "MONGODB_URI": mongodb_uri, "MONGODB_DATABASE": database,
        **service_env(),
        "DOMAINS_KEY_ENCRYPTION_KEY": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
        "MAILSTREAM_INBOUND_DOMAIN": "in.mailstream.test", "INGEST_SMTP_PORT": str(ports["smtp"]),
        "INGEST_OPS_PORT": str(ports["ingest"]), "INBOX_HTTP_PORT": str(ports["inbox"]),
        "DOMAINS_HTTP_PORT": str(ports["domains"]), "AUTOMATION_HTTP_PORT": str(ports["automation"]),
        "SENDER_HTTP_PORT": str(ports["sender"]), "DOMAINS_URL": f"http://127.0.0.1:{ports['domains']}",
        "AUTOMATION_URL": f"http://127.0.0.1:{ports['automation']}", "SENDER_URL": f"http://127.0.0.1:{ports['sender']}",
        "SENDER_SMTP_HOST": "127.0.0.1", "SENDER_SMTP_PORT": str(ports["relay"]),
        "DNS_NAMESERVERS": "127.0.0.1:1", "LOG_LEVEL": "WARNING", "SHUTDOWN_GRACE_SECONDS": "5",
    }  # fmt: skip
    processes = []
    for name in ("domains", "automation", "inbox", "sender", "ingest"):
        ops = f"http://127.0.0.1:{ports[name]}"
        processes.append(ServiceProcess(name, f"mailstream_{name}", env, ops, log_dir).start())
    return ports, env, processes


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=5, help="mails per second, all threads together")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--threads", type=int, default=2)
    options = parser.parse_args()
    amqp = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
    mongodb_uri = os.environ.get("MONGODB_URI", "mongodb://127.0.0.1:27017/")
    database = f"mailstream_bench_{uuid.uuid4().hex[:8]}"
    processes: list[ServiceProcess] = []
    sent: dict[str, float] = {}
    seen: dict[str, float] = {}
    refused: list[str] = []
    stop_sse = threading.Event()
    try:
        with vhost(amqp) as amqp_url, tempfile.TemporaryDirectory() as logs:
            ports, env, processes = start_system(amqp_url, mongodb_uri, database, Path(logs))
            cli = subprocess.run(
                [str(Path(sys.executable).parent / "mailstream"), "accounts", "create", "--name", "Bench"],
                env={**os.environ, **env}, capture_output=True, check=True, timeout=60,
            )  # fmt: skip
            api_key = json.loads(cli.stdout)["api_key"]
            gateway = f"http://127.0.0.1:{ports['inbox']}"
            api = httpx.Client(base_url=gateway, headers={"Authorization": f"Bearer {api_key}"}, timeout=10)
            topic = api.post("/v1/topics", json={"name": "Bench"}).json()
            stream = api.post(
                f"/v1/topics/{topic['id']}/streams", json={"address": "support@acme.test", "allow_agent_send": True}
            ).json()
            forwarding = stream["forwarding_address"]

            def listen() -> None:
                client = httpx.Client(base_url=gateway, headers={"Authorization": f"Bearer {api_key}"}, timeout=None)
                with client, client.stream("GET", "/v1/events") as response:
                    name = None
                    for line in response.iter_lines():
                        if stop_sse.is_set():
                            return
                        if line.startswith("event:"):
                            name = line.partition(":")[2].strip()
                        elif line.startswith("data:") and name == "message.received":
                            subject = json.loads(line.partition(":")[2]).get("subject", "")
                            seen.setdefault(subject, time.perf_counter())

            threading.Thread(target=listen, daemon=True).start()
            time.sleep(1)  # let the SSE subscription reach the gateway's hub before the first mail

            per_thread = options.rate / options.threads
            count = int(options.seconds * per_thread)

            def sender(index: int) -> None:
                with smtplib.SMTP("127.0.0.1", ports["smtp"], timeout=30) as smtp:
                    smtp.ehlo("bench.example")
                    start = time.perf_counter() + index / options.rate
                    for n in range(count):
                        wait = start + n / per_thread - time.perf_counter()
                        if wait > 0:
                            time.sleep(wait)  # pacing of the load generator, not a wait for a condition
                        subject = f"latency {index}-{n}"
                        body = f"From: c{n}@customer.example\r\nTo: support@acme.test\r\nSubject: {subject}\r\n"
                        body += f"Message-ID: <{uuid.uuid4().hex}@customer.example>\r\n\r\n" + "x" * 900 + "\r\n"
                        try:
                            smtp.sendmail(f"c{n}@customer.example", [forwarding], body.encode())
                            sent[subject] = time.perf_counter()
                        except smtplib.SMTPException as exc:
                            refused.append(f"{subject}: {exc}")

            senders = [threading.Thread(target=sender, args=(i,)) for i in range(options.threads)]
            began = time.perf_counter()
            for t in senders:
                t.start()
            for t in senders:
                t.join()
            elapsed = time.perf_counter() - began
            deadline = time.monotonic() + 60
            while set(sent) - set(seen) and time.monotonic() < deadline:
                time.sleep(0.1)
            stop_sse.set()
    finally:
        for process in reversed(processes):
            with contextlib.suppress(Exception):
                process.stop()
        with contextlib.suppress(Exception), MongoClient(mongodb_uri) as mongo:
            mongo.drop_database(database)

    latencies = sorted((seen[s] - t) * 1000 for s, t in sent.items() if s in seen)
    missing = len(set(sent) - set(seen))
    print(
        f"offered {options.rate:.0f} mails/s for {options.seconds:.0f} s ({options.threads} reused connections); achieved {len(sent) / elapsed:.1f} mails/s"
    )
    print(f"accepted {len(sent)}, refused {len(refused)}, not seen via the gateway within 60 s: {missing}")
    if latencies:
        q = statistics.quantiles(latencies, n=100, method="inclusive")
        print(
            f"250 -> readable via gateway (ms): p50 {q[49]:.0f}  p90 {q[89]:.0f}  p99 {q[98]:.0f}  max {latencies[-1]:.0f}"
        )
    for line in refused[:5]:
        print("refused:", line)


if __name__ == "__main__":
    main()
