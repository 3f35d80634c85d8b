"""Mails/s that ingest durably accepts, next to Postfix doing the same, under the same Postfix `smtp-source` load.

One run, all on this machine, every target measured back to back within each mode so that ratios share the
machine's state. Modes: `smtp-source -s 8` and `-s 64`, a new connection per mail, 1 KB and 50 KB mails.
Targets:

- postfix: a throwaway Postfix (bench/ingest_postfix.py), queue file fsynced before 250, delivery to `discard:`.
  The baseline every ratio is taken against.
- smtp-sink: Postfix's test server that answers 250 and keeps nothing (the load generator's ceiling).
- bare: bench/ingest_bare_smtp.py, the same aiosmtpd set-up as ingest answering 250 and keeping nothing.
- minimal quorum / minimal classic (`--minimal`): the bare handler plus a publish-with-confirm of the raw mail to
  a durable quorum or classic queue before its 250 (the broker's confirm latency, without ingest's work);
  minimal event: the same, publishing ingest's `MailReceived` through `mailstream_common.broker.Broker`.
- ingest xN: the real ingest (`python -m mailstream_ingest`, INGEST_ROLE=smtp: RCPT lookup through its stream
  cache, MailReceived published persistent and confirmed by RabbitMQ before each 250), N processes on one port
  with SO_REUSEPORT. `--ingest x1,x2` picks the variants. Ingest runs on uvloop (its default);
  `--asyncio-loop` adds "ingest x1 asyncio", the same on asyncio's own loop.

    eval "$(scripts/deps.sh)" && uv run python bench/ingest_smtp.py [--rounds 3] [--small 1000] [--large 300]

Each mode runs `--rounds` times, every round starting with another target; the table shows the median rate of the
rounds (and each round's rate), and the ratio of medians to Postfix.

Needs root (Postfix), RabbitMQ (a private vhost is made and deleted), MongoDB, rabbitmqctl, smtp-source, smtp-sink.
"""

import argparse
import contextlib
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median
from urllib.parse import quote, urlsplit, urlunsplit

import httpx
from pymongo import MongoClient

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from ingest_postfix import postfix_instance  # noqa: E402

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


def smtp_source(port: int, sessions: int, count: int, size: int, rcpt: str) -> float:
    """Mails per second for one smtp-source run, a new connection per mail (it exits non-zero on any refusal)."""
    args = ["smtp-source", "-s", str(sessions), "-m", str(count), "-l", str(size), "-f", "bench@load.example"]
    started = time.perf_counter()
    subprocess.run([*args, "-t", rcpt, f"127.0.0.1:{port}"], check=True, capture_output=True, timeout=150)
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


@contextlib.contextmanager
def stopping(procs: list[subprocess.Popen]):
    """Stop every process before the vhost goes, so that nothing logs a vanished broker."""
    try:
        yield
    finally:
        stop_all(procs)


@dataclass
class Target:
    name: str
    port: int
    ops_urls: list[str] = field(default_factory=list)
    pids: list[int] = field(default_factory=list)


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time the processes have used so far (from /proc, in clock ticks)."""
    ticks = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def wait_port(port: int, timeout: float = 30) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.recv(100)  # the greeting
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", default="8,64", help="comma list of smtp-source -s values")
    parser.add_argument("--small", type=int, default=1000, help="mails per 1 KB run")
    parser.add_argument("--large", type=int, default=300, help="mails per 50 KB run")
    parser.add_argument("--ingest", default="x1,x2", help="ingest variants: xN (N processes), comma separated")
    parser.add_argument(
        "--asyncio-loop", action="store_true", help="also 'ingest x1 asyncio': ingest on asyncio's loop, not uvloop"
    )
    parser.add_argument("--before", metavar="SRC", help="also 'ingest before': mailstream_ingest from this source tree")
    parser.add_argument("--minimal", action="store_true", help="also the minimal publish-with-confirm handlers")
    parser.add_argument("--no-baselines", action="store_true", help="only Postfix and ingest (quicker runs)")
    parser.add_argument("--rounds", type=int, default=1, help="repeat every mode; the median of the rounds is shown")
    parser.add_argument("--profile", metavar="FILE", help="run the first ingest variant under cProfile")
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
    results: dict[tuple[int, int, str], list[tuple[float, float | None, float | None]]] = {}
    load = [os.getloadavg()]
    started = time.monotonic()
    postfix_port = free_port()
    try:
        with vhost(amqp_url) as bench_amqp, postfix_instance(postfix_port, DOMAIN), stopping(procs):
            targets = [Target("postfix", postfix_port)]
            if not options.no_baselines:
                sink_port = free_port()
                procs.append(
                    subprocess.Popen(
                        ["smtp-sink", "-u", "nobody", f"127.0.0.1:{sink_port}", "512"], stdout=subprocess.DEVNULL
                    )
                )
                targets.append(Target("smtp-sink", sink_port))
                baselines = [("bare", [])]
                if options.minimal:
                    baselines += [
                        ("minimal quorum", [bench_amqp, "quorum"]),
                        ("minimal classic", [bench_amqp, "classic"]),
                        ("minimal event", [bench_amqp, "event"]),
                    ]
                for name, extra in baselines:
                    port = free_port()
                    proc = subprocess.Popen(
                        [sys.executable, str(ROOT / "bench" / "ingest_bare_smtp.py"), str(port), *extra],
                        stdout=subprocess.PIPE,
                    )
                    procs.append(proc)
                    assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
                    targets.append(Target(name, port))

            def start_ingest(target: Target, env_extra: dict[str, str], profile: str | None) -> None:
                ops_port = free_port()
                env = {
                    **os.environ, "AMQP_URL": bench_amqp, "MONGODB_URI": mongodb_uri, "MONGODB_DATABASE": database,
                    "MAILSTREAM_INBOUND_DOMAIN": DOMAIN, "INGEST_ROLE": "smtp", "INGEST_SMTP_PORT": str(target.port),
                    "INGEST_OPS_PORT": str(ops_port), "INGEST_SMTP_REUSE_PORT": "true", "LOG_LEVEL": "INFO",
                    "INGEST_MAX_SESSIONS": "1000", **env_extra,
                }  # fmt: skip
                wrapper = ["-m", "cProfile", "-o", profile] if profile else []
                proc = subprocess.Popen(
                    [sys.executable, *wrapper, "-m", "mailstream_ingest"], env=env, stderr=subprocess.DEVNULL
                )
                procs.append(proc)
                print(f"ingest pid {proc.pid} on port {target.port}", file=sys.stderr, flush=True)  # py-spy --pid
                wait_ready(f"http://127.0.0.1:{ops_port}/readyz", proc)
                target.ops_urls.append(f"http://127.0.0.1:{ops_port}")
                target.pids.append(proc.pid)

            profiled: subprocess.Popen | None = None
            variants = [(f"ingest {v}", int(v.removeprefix("x")), {}) for v in options.ingest.split(",")]
            if options.asyncio_loop:
                variants.append(("ingest x1 asyncio", 1, {"INGEST_EVENT_LOOP": "asyncio"}))
            if options.before:
                variants.append(("ingest before x1", 1, {"PYTHONPATH": options.before}))
            for number, (name, count, env_extra) in enumerate(variants):
                target = Target(name, free_port())
                for _ in range(count):
                    profile = options.profile if number == 0 and not target.ops_urls else None
                    start_ingest(target, env_extra, profile)
                    if profile:
                        profiled = procs[-1]
                targets.append(target)
            wait_port(postfix_port)
            for target in targets:  # warm-up: connections, caches, the stream lookup
                smtp_source(target.port, 8, 50, 1024, forwarding)

            for round_ in range(options.rounds):
                for sessions in (int(s) for s in options.sessions.split(",")):
                    for size, count in ((1024, options.small), (50 * 1024, options.large)):
                        shift = round_ % len(targets)  # each round starts with another target: no order bias
                        for target in targets[shift:] + targets[:shift]:
                            before, cpu = durable_confirm(target.ops_urls), cpu_seconds(target.pids)
                            rate = smtp_source(target.port, sessions, count, size, forwarding)
                            after, cpu = durable_confirm(target.ops_urls), cpu_seconds(target.pids) - cpu
                            done = after[1] - before[1]
                            confirm = (after[0] - before[0]) / done if done else None
                            cpu_ms = cpu * 1000 / count if target.pids else None
                            results.setdefault((sessions, size, target.name), []).append((rate, confirm, cpu_ms))
                        load.append(os.getloadavg())
            if profiled is not None:  # SIGTERM: graceful shutdown writes the profile
                profiled.terminate()
                profiled.wait(60)
    finally:
        mongo.drop_database(database)
        mongo.close()

    if options.profile:
        import pstats

        print(f"--- ingest profile ({options.profile}), top functions by own time ---")
        pstats.Stats(options.profile).sort_stats("tottime").print_stats(30)
    print(f"1 KB runs: {options.small} mails, 50 KB runs: {options.large} mails, a new connection per mail")
    print(f"wall {time.monotonic() - started:.0f} s; load average (1 min) during the run: "
          + ", ".join(f"{avg[0]:.1f}" for avg in load))  # fmt: skip
    print(f"{'sessions':>8} {'size':>6} {'target':24} {'mails/s':>8} {'vs Postfix':>10} {'confirm ms':>10}"
          f" {'CPU ms/mail':>11}  rounds")  # fmt: skip
    postfix = {(sessions, size): median(run[0] for run in runs) for (sessions, size, name), runs in results.items()
               if name == "postfix"}  # fmt: skip
    for (sessions, size, name), runs in results.items():
        rate = median(run[0] for run in runs)
        ratio = f"{rate / postfix[(sessions, size)]:.2f}" if name != "postfix" else ""
        confirms = [run[1] for run in runs if run[1] is not None]
        confirm_ms = f"{median(confirms) * 1000:.1f}" if confirms else ""
        cpus = [run[2] for run in runs if run[2] is not None]
        cpu_ms = f"{median(cpus):.2f}" if cpus else ""
        each = " ".join(f"{run[0]:.0f}" for run in runs) if len(runs) > 1 else ""
        print(
            f"{sessions:>8} {size // 1024:>4} KB {name:24} {rate:8.0f} {ratio:>10} {confirm_ms:>10} {cpu_ms:>11}  {each}"
        )


if __name__ == "__main__":
    main()
