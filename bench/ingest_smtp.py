"""Mails/s that ingest durably accepts vs a bare aiosmtpd 250-handler, under the same Postfix `smtp-source` load.

One run, all on this machine: for 1 KB and 50 KB mails, with a new connection per mail and with reused
connections, `smtp-source -s SESSIONS -m COUNT` against (a) bench/ingest_bare_smtp.py answering 250 only,
(a') the same with a minimal publish-with-confirm to a quorum queue before the 250, and (b) the real ingest
(`python -m mailstream_ingest`, INGEST_ROLE=smtp: RCPT lookup through its stream cache, MailReceived published
and confirmed by RabbitMQ before each 250), then (c) two ingest processes sharing the port with SO_REUSEPORT.

    eval "$(scripts/deps.sh)" && uv run python bench/ingest_smtp.py [--sessions 8] [--small 1500] [--large 400]

Needs RabbitMQ (a private vhost is made and deleted), MongoDB/FerretDB, rabbitmqctl and smtp-source.
"""

import argparse
import contextlib
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import httpx
from pymongo import MongoClient

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.processes import free_port  # noqa: E402

DOMAIN = "in.mailstream.test"


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


@contextlib.contextmanager
def vhost(amqp_url: str):
    name = f"mailstream-bench-{uuid.uuid4().hex[:8]}"
    parts = urlsplit(amqp_url)
    rabbitmqctl("add_vhost", name)
    rabbitmqctl("set_permissions", "-p", name, parts.username or "guest", ".*", ".*", ".*")
    try:
        yield urlunsplit(parts._replace(path="/" + quote(name, safe="")))
    finally:
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", name], check=False, capture_output=True)


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{url} not ready")


def smtp_source(port: int, sessions: int, count: int, size: int, reuse: bool, rcpt: str) -> float:
    """Mails per second for one smtp-source run (it exits non-zero on any refusal)."""
    args = [
        "smtp-source",
        "-s",
        str(sessions),
        "-m",
        str(count),
        "-l",
        str(size),
        "-f",
        "bench@load.example",
        "-t",
        rcpt,
    ]
    if reuse:
        args.append("-d")
    started = time.perf_counter()
    subprocess.run([*args, f"127.0.0.1:{port}"], check=True, capture_output=True, timeout=120)
    return count / (time.perf_counter() - started)


def stop_all(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(30)


def durable_confirm(ops_urls: list[str]) -> tuple[float, float]:
    """(sum of seconds, count) of ingest's end-of-DATA-to-confirm histogram, over all running processes."""
    total, count = 0.0, 0.0
    for ops_url in ops_urls:
        for line in httpx.get(f"{ops_url}/metrics", timeout=5).text.splitlines():
            if line.startswith("mailstream_ingest_durable_confirm_seconds_sum"):
                total += float(line.split(" ")[1])
            elif line.startswith("mailstream_ingest_durable_confirm_seconds_count"):
                count += float(line.split(" ")[1])
    return total, count


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, default=8)
    parser.add_argument("--small", type=int, default=1500, help="mails per 1 KB run")
    parser.add_argument("--large", type=int, default=400, help="mails per 50 KB run")
    parser.add_argument("--profile", metavar="FILE", help="run the first ingest under cProfile and print its top")
    options = parser.parse_args()
    amqp_url = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
    mongodb_uri = os.environ.get("MONGODB_URI", "mongodb://127.0.0.1:27017/")
    database = f"mailstream_bench_{uuid.uuid4().hex[:8]}"
    forwarding = f"fwd-bench-{uuid.uuid4().hex[:8]}@{DOMAIN}"
    procs: list[subprocess.Popen] = []
    mongo = MongoClient(mongodb_uri)
    mongo[database]["stream_routes"].insert_one(  # ingest's own projection of the stream
        {"_id": uuid.uuid4().hex, "account_id": "a", "stream_address": "support@acme.example",
         "forwarding_address": forwarding, "live": True, "version": 1}
    )  # fmt: skip
    results: dict[str, tuple[float, float | None]] = {}
    try:
        with vhost(amqp_url) as bench_amqp:
            bare_port = free_port()
            bare = subprocess.Popen(
                [sys.executable, str(ROOT / "bench" / "ingest_bare_smtp.py"), str(bare_port)], stdout=subprocess.PIPE
            )
            procs.append(bare)
            assert bare.stdout is not None and bare.stdout.readline().strip() == b"ready"
            minimal_port = free_port()
            minimal = subprocess.Popen(
                [sys.executable, str(ROOT / "bench" / "ingest_bare_smtp.py"), str(minimal_port), bench_amqp],
                stdout=subprocess.PIPE,
            )
            procs.append(minimal)
            assert minimal.stdout is not None and minimal.stdout.readline().strip() == b"ready"

            ingest_port = free_port()
            ops_urls: list[str] = []

            def start_ingest(profile: str | None = None) -> subprocess.Popen:
                ops_port = free_port()
                env = {
                    **os.environ, "AMQP_URL": bench_amqp, "MONGODB_URI": mongodb_uri, "MONGODB_DATABASE": database,
                    "MAILSTREAM_INBOUND_DOMAIN": DOMAIN, "INGEST_ROLE": "smtp", "INGEST_SMTP_PORT": str(ingest_port),
                    "INGEST_OPS_PORT": str(ops_port), "INGEST_SMTP_REUSE_PORT": "true", "LOG_LEVEL": "INFO",
                    "INGEST_MAX_SESSIONS": "1000",
                }  # fmt: skip
                wrapper = ["-m", "cProfile", "-o", profile] if profile else []
                command = [sys.executable, *wrapper, "-m", "mailstream_ingest"]
                proc = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
                procs.append(proc)
                wait_ready(f"http://127.0.0.1:{ops_port}/readyz", proc)
                ops_urls.append(f"http://127.0.0.1:{ops_port}")
                return proc

            first = start_ingest(options.profile)
            smtp_source(ingest_port, options.sessions, 50, 1024, True, forwarding)  # warm-up
            smtp_source(bare_port, options.sessions, 50, 1024, True, forwarding)

            def measure(runs: list[tuple[str, int]]) -> None:
                """Each size/connection mode against every target back to back, so they share the machine's mood."""
                for size, count in ((1024, options.small), (50 * 1024, options.large)):
                    for reuse in (False, True):
                        label = f"{size // 1024} KB, {'reused' if reuse else 'new'} connections"
                        for who, port in runs:
                            ours = who.startswith("ingest")
                            before = durable_confirm(ops_urls) if ours else (0.0, 0.0)
                            rate = smtp_source(port, options.sessions, count, size, reuse, forwarding)
                            after = durable_confirm(ops_urls) if ours else (0.0, 0.0)
                            done = after[1] - before[1]
                            results[f"{who} | {label}"] = (rate, (after[0] - before[0]) / done if done else None)

            measure([("bare", bare_port), ("minimal confirm", minimal_port), ("ingest x1", ingest_port)])
            if options.profile:  # SIGTERM: graceful shutdown writes the profile; x2 runs without it
                first.terminate()
                first.wait(60)
                ops_urls.clear()
                start_ingest()
            start_ingest()  # a second process on the same port (SO_REUSEPORT)
            measure([("ingest x2", ingest_port)])
            stop_all(procs)  # before the vhost goes, so that nothing logs a vanished broker
    finally:
        stop_all(procs)
        mongo.drop_database(database)
        mongo.close()

    if options.profile:
        import pstats

        print(f"--- ingest x1 profile ({options.profile}), top functions by own time ---")
        pstats.Stats(options.profile).sort_stats("tottime").print_stats(25)
    print(f"smtp-source -s {options.sessions}; 1 KB runs: {options.small} mails, 50 KB runs: {options.large} mails")
    print(f"{'run':52} {'mails/s':>8} {'vs bare':>8} {'vs minimal':>10} {'x2 vs x1':>9} {'confirm ms':>11}")
    for key, (rate, confirm) in results.items():
        who, label = key.split(" | ")
        bare = results[f"bare | {label}"][0]
        one = results[f"ingest x1 | {label}"][0]
        ratio = f"{rate / bare:.0%}" if who != "bare" else ""
        minimal_rate = results[f"minimal confirm | {label}"][0]
        vs_minimal = f"{rate / minimal_rate:.0%}" if who.startswith("ingest") else ""
        gain = f"{rate / one - 1:+.0%}" if who == "ingest x2" else ""
        confirm_ms = f"{confirm * 1000:.1f}" if confirm is not None else ""
        print(f"{key:52} {rate:8.0f} {ratio:>8} {vs_minimal:>10} {gain:>9} {confirm_ms:>11}")


if __name__ == "__main__":
    main()
