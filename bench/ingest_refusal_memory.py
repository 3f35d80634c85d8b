"""Ingest's memory under many short SMTP sessions: refused at MAIL FROM (back-pressure gate shut) against controls.

Issue 12: in the 30-minute soak ingest's RSS grew by 27.7 MB/h, and the growth was taken to start when the
back-pressure gate started refusing (about 423,000 refused transactions, each on a fresh connection). This runs the
real ingest (`python -m mailstream_ingest`, INGEST_ROLE=smtp, own RabbitMQ vhost and database per run) once per mode
for `--seconds` and drives it with a threaded smtplib client shaped like the soak's (`bench/soak.py` SmtpLoad:
connect, EHLO, one mail; on a 4xx smtplib sends RSET, the client QUITs and reconnects), sampling ingest's RSS from
/proc every `--sample-seconds`. In every mode the backlog watch runs, every `--check-seconds`:

- refused: the gate shut (INGEST_BACKLOG_LIMIT=1 and nothing consumes `ingest.analyse`, which a few accepted mails
  fill first), so every MAIL FROM gets `451 4.3.2`;
- accepted: the gate open (a limit never reached), every mail accepted (published persistent and confirmed);
- quit: the gate open; connect, EHLO, QUIT, no transaction;
- idle: the gate open, no SMTP connection at all.

`--before SRC` also runs every mode with `mailstream_ingest` taken from another source tree (PYTHONPATH), e.g. the
commit before the fix: `git archive <commit> services/ingest/src | tar -x -C /tmp/before` and
`--before /tmp/before/services/ingest/src`.

    eval "$(scripts/deps.sh)" && uv run --frozen python bench/ingest_refusal_memory.py \
        [--seconds 180] [--modes refused,accepted,quit,idle] [--check-seconds 0.25] [--before SRC] \
        [--out docs/reliability/ingest-refusal-memory]

The slopes (least squares over the samples after the first `--warmup-seconds`) are given in MB per 100,000
connections and in MB per hour. `--tracemalloc` starts ingest under this file's `--child` wrapper, which traces Python
allocations and, on SIGUSR1, writes the top growth since the first snapshot and the live object counts by type
to `<logs>/<mode>-<variant>-tracemalloc.txt` (diagnosis only: tracing slows ingest down several times).
`--malloc-trim` makes the child call glibc's malloc_trim(0) on SIGUSR2, to tell freed-but-kept heap from live
objects. Writes `<out>/series<tag>.csv`, `<out>/rss<tag>.png` and prints a summary table; ingest's log and its
last /metrics of each run go to `--logs`.

Needs RabbitMQ (a private vhost is made and deleted) and MongoDB (a private database, dropped at the end).
"""

import argparse
import contextlib
import csv
import ctypes
import gc
import os
import signal
import smtplib
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

DOMAIN = "in.mailstream.test"
MAIL = (
    b"From: Customer <c1@customer.example>\r\nTo: support@acme.test\r\nSubject: soak 0000001\r\n"
    b"Message-ID: <refusal-bench@customer.example>\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n\r\n" + b"Hello, my order has not arrived yet. " * 16 + b"\r\n"
)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


@dataclass
class Run:
    mode: str
    variant: str = "after"
    samples: list[tuple[int, float, float, float]] = field(default_factory=list)  # (connections, s, RSS MB, load)
    replies: Counter = field(default_factory=Counter)
    trimmed: tuple[float, float] | None = None  # RSS before and after malloc_trim, when asked

    @property
    def label(self) -> str:
        return self.mode if self.variant == "after" else f"{self.mode} ({self.variant})"

    def slope(self, warmup: float, *, per: str) -> float:
        """Least squares over the samples after `warmup` seconds: MB per 100,000 connections, or MB per hour."""
        points = [(n if per == "connections" else s, mb) for n, s, mb, _ in self.samples if s >= warmup]
        if len(points) < 2:
            return float("nan")
        mean_x = sum(x for x, _ in points) / len(points)
        mean_mb = sum(mb for _, mb in points) / len(points)
        cov = sum((x - mean_x) * (mb - mean_mb) for x, mb in points)
        var = sum((x - mean_x) ** 2 for x, _ in points)
        if var == 0:
            return float("nan")
        return cov / var * (100_000 if per == "connections" else 3600)


class Load:
    """`threads` smtplib clients, each doing one session after the other until `total` sessions have been made."""

    def __init__(self, port: int, mode: str, rcpt: str, threads: int) -> None:
        self.port, self.mode, self.rcpt, self.threads = port, mode, rcpt, threads
        self.started = 0
        self.done = 0
        self.lock = threading.Lock()
        self.replies: Counter = Counter()

    def session(self) -> str:
        smtp = smtplib.SMTP("127.0.0.1", self.port, timeout=60)
        try:
            smtp.ehlo("mta.customer.example")
            if self.mode == "quit":
                return "quit"
            try:
                smtp.sendmail("c1@customer.example", [self.rcpt], MAIL)
                return "250"
            except smtplib.SMTPResponseException as exc:  # as the soak: smtplib sent RSET after the refusal
                return str(exc.smtp_code)
        finally:
            with contextlib.suppress(smtplib.SMTPException, OSError):
                smtp.quit()

    def run(self, until: float) -> None:
        """Sessions one after the other on each thread until the monotonic clock reaches `until`."""

        def worker() -> None:
            while time.monotonic() < until:
                with self.lock:
                    self.started += 1
                try:
                    reply = self.session()
                except (smtplib.SMTPException, OSError) as exc:
                    reply = type(exc).__name__
                with self.lock:
                    self.done += 1
                    self.replies[reply] += 1

        workers = [threading.Thread(target=worker, daemon=True) for _ in range(self.threads)]
        for thread in workers:
            thread.start()
        for thread in workers:
            thread.join()


def run_mode(mode: str, variant: str, options: argparse.Namespace, amqp_url: str, mongodb_uri: str, logs: Path) -> Run:
    import httpx
    from ingest_smtp import stopping, vhost, wait_port, wait_ready
    from pymongo import MongoClient

    from tests.support.processes import free_port

    database = f"mailstream_refusal_{uuid.uuid4().hex[:8]}"
    forwarding = f"fwd-refusal-{uuid.uuid4().hex[:8]}@{DOMAIN}"
    mongo = MongoClient(mongodb_uri)
    mongo[database]["stream_routes"].insert_one(  # ingest's own projection of the stream
        {"_id": uuid.uuid4().hex, "account_id": "a", "stream_address": "support@acme.example",
         "forwarding_address": forwarding, "live": True, "version": 1}
    )  # fmt: skip
    run = Run(mode, variant)
    procs: list[subprocess.Popen] = []
    try:
        with vhost(amqp_url) as bench_amqp, stopping(procs):
            port, ops_port = free_port(), free_port()
            env = {
                **os.environ, "AMQP_URL": bench_amqp, "MONGODB_URI": mongodb_uri, "MONGODB_DATABASE": database,
                "MAILSTREAM_INBOUND_DOMAIN": DOMAIN, "INGEST_ROLE": "smtp", "INGEST_SMTP_PORT": str(port),
                "INGEST_OPS_PORT": str(ops_port), "LOG_LEVEL": "INFO", "INGEST_MAX_SESSIONS": "1000",
                # refused: shut as soon as anything waits in ingest.analyse (nobody consumes it here); else a limit
                # that the run never reaches, so that the backlog watch runs in every mode but never shuts the gate
                "INGEST_BACKLOG_LIMIT": "1" if mode == "refused" else "1000000000",
                "INGEST_BACKLOG_CHECK_SECONDS": str(options.check_seconds),
            }  # fmt: skip
            if variant != "after":
                env["PYTHONPATH"] = options.before
            if options.malloc_arena_max:
                env["MALLOC_ARENA_MAX"] = str(options.malloc_arena_max)
            if options.tracemalloc or options.malloc_trim:
                command = [sys.executable, __file__, "--child", str(logs / f"{mode}-{variant}-tracemalloc.txt")]
                if options.tracemalloc:
                    env["REFUSAL_BENCH_TRACEMALLOC"] = "1"
            else:
                command = [sys.executable, "-m", "mailstream_ingest"]
            log_path = logs / f"{mode}-{variant}-ingest.log"
            with log_path.open("wb") as log_file:
                proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=log_file)
            procs.append(proc)
            wait_ready(f"http://127.0.0.1:{ops_port}/readyz", proc)
            wait_port(port)
            load = Load(port, mode, forwarding, options.threads)
            if mode == "refused":  # fill the watched queue past the limit, then wait for the first 451
                for _ in range(3):
                    assert load.session() == "250"
                deadline = time.monotonic() + 30
                while load.session() != "451":
                    if time.monotonic() > deadline:
                        raise RuntimeError("the gate did not shut")
                    time.sleep(0.2)  # the gate is read every 0.2 s; polled until it answers 451
            print(f"{run.label}: ingest pid {proc.pid}, port {port}", file=sys.stderr, flush=True)
            started = time.monotonic()
            until = started + options.seconds
            driver = threading.Thread(target=load.run, args=(until,), daemon=True)
            if mode != "idle":
                driver.start()
            next_sample = started
            baseline_taken = False
            while True:
                now = time.monotonic()
                if now >= next_sample or now >= until:
                    run.samples.append((load.done, now - started, rss_mb(proc.pid), os.getloadavg()[0]))
                    next_sample += options.sample_seconds
                    if options.tracemalloc and not baseline_taken and now - started >= options.warmup_seconds:
                        proc.send_signal(signal.SIGUSR1)  # the baseline snapshot, after warm-up
                        baseline_taken = True
                if now >= until and not driver.is_alive():
                    break
                time.sleep(min(0.5, options.sample_seconds / 4))  # sampling cadence of the RSS probe
            run.samples.append((load.done, time.monotonic() - started, rss_mb(proc.pid), os.getloadavg()[0]))
            run.replies = load.replies
            if options.tracemalloc:
                proc.send_signal(signal.SIGUSR1)  # the final snapshot, diffed against the baseline
                time.sleep(10)  # the child writes the diff
            if options.malloc_trim:
                before = rss_mb(proc.pid)
                proc.send_signal(signal.SIGUSR2)
                time.sleep(2)
                run.trimmed = (before, rss_mb(proc.pid))
            with contextlib.suppress(httpx.HTTPError):
                metrics = httpx.get(f"http://127.0.0.1:{ops_port}/metrics", timeout=5).text
                (logs / f"{mode}-{variant}-metrics.txt").write_text(metrics)
    finally:
        mongo.drop_database(database)
        mongo.close()
    return run


def child(report: Path) -> None:
    """ingest under diagnosis: SIGUSR1 takes a tracemalloc snapshot (the first is the baseline, each later one is
    diffed against it) with object counts by type; SIGUSR2 returns freed heap to the system (glibc malloc_trim)."""
    import tracemalloc

    tracing = os.environ.get("REFUSAL_BENCH_TRACEMALLOC") == "1"
    if tracing:
        tracemalloc.start(12)
    state: dict = {}

    def snapshot(signum: int, frame: object) -> None:
        gc.collect()
        counts = Counter(type(o).__name__ for o in gc.get_objects())
        snap = tracemalloc.take_snapshot() if tracing else None
        if "base" not in state:
            state["base"], state["counts"] = snap, counts
            return
        with report.open("a") as out:
            out.write("--- object counts by type, growth since the baseline ---\n")
            grown = counts.copy()
            grown.subtract(state["counts"])
            for name, delta in grown.most_common(25):
                out.write(f"{delta:+9d}  {name} (now {counts[name]})\n")
            if snap is not None:
                out.write("--- tracemalloc: top growth by traceback ---\n")
                for stat in snap.compare_to(state["base"], "traceback")[:15]:
                    out.write(f"{stat.size_diff / 1024:+10.1f} KiB {stat.count_diff:+8d} blocks\n")
                    for line in stat.traceback.format()[-12:]:
                        out.write(f"    {line}\n")

    def trim(signum: int, frame: object) -> None:
        gc.collect()
        ctypes.CDLL("libc.so.6").malloc_trim(0)

    signal.signal(signal.SIGUSR1, snapshot)
    signal.signal(signal.SIGUSR2, trim)
    from mailstream_ingest.main import cli

    cli()


def chart(runs: list[Run], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (by_connections, by_time) = plt.subplots(1, 2, figsize=(13, 5))
    colours = {"refused": "tab:red", "accepted": "tab:green", "quit": "tab:blue", "idle": "tab:grey"}
    for run in runs:
        style = {"color": colours.get(run.mode), "linestyle": "--" if run.variant != "after" else "-"}
        rss = [mb for _, _, mb, _ in run.samples]
        if run.mode != "idle":
            by_connections.plot([n / 1000 for n, *_ in run.samples], rss, label=run.label, **style)
        by_time.plot([s / 60 for _, s, _, _ in run.samples], rss, label=run.label, **style)
    by_connections.set_xlabel("SMTP connections handled (thousands)")
    by_connections.set_title("RSS against connections")
    by_time.set_xlabel("minutes")
    by_time.set_title("RSS against time")
    for ax in (by_connections, by_time):
        ax.set_ylabel("ingest RSS (MB)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("ingest under refused (451 at MAIL FROM), accepted, connect-QUIT and no SMTP load")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        child(Path(sys.argv[2]))
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=180, help="length of each mode's run")
    parser.add_argument("--modes", default="refused,accepted,quit,idle")
    parser.add_argument("--threads", type=int, default=8, help="client threads (the soak's SmtpLoad has 8)")
    parser.add_argument("--check-seconds", type=float, default=0.25, help="INGEST_BACKLOG_CHECK_SECONDS (default 1)")
    parser.add_argument("--before", metavar="SRC", help="also run each mode with mailstream_ingest from SRC")
    parser.add_argument("--sample-seconds", type=float, default=5, help="seconds between RSS samples")
    parser.add_argument("--warmup-seconds", type=float, default=20, help="seconds left out of the slopes")
    parser.add_argument("--tracemalloc", action="store_true", help="diagnosis: trace ingest's allocations")
    parser.add_argument("--malloc-trim", action="store_true", help="diagnosis: malloc_trim(0) at the end")
    parser.add_argument("--malloc-arena-max", type=int, help="diagnosis: MALLOC_ARENA_MAX for ingest")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "reliability" / "ingest-refusal-memory")
    parser.add_argument("--logs", type=Path, default=Path("/tmp/ingest-refusal-memory"), help="ingest's logs")
    parser.add_argument("--tag", default="", help="suffix of the CSV and chart names")
    options = parser.parse_args()
    amqp_url = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
    mongodb_uri = os.environ.get("MONGODB_URI", "mongodb://127.0.0.1:27017/")
    options.out.mkdir(parents=True, exist_ok=True)
    options.logs.mkdir(parents=True, exist_ok=True)

    runs = []
    variants = ["before", "after"] if options.before else ["after"]
    for mode in options.modes.split(","):
        for variant in variants:
            run = run_mode(mode, variant, options, amqp_url, mongodb_uri, options.logs)
            runs.append(run)
            first, last = run.samples[0], run.samples[-1]
            print(
                f"{run.label}: {last[0]} connections in {last[1]:.0f} s, RSS {first[2]:.1f} → {last[2]:.1f} MB, "
                f"{run.slope(options.warmup_seconds, per='connections'):+.2f} MB/100k connections, "
                f"{run.slope(options.warmup_seconds, per='hour'):+.1f} MB/h, replies {dict(run.replies)}"
                + (f", malloc_trim {run.trimmed[0]:.1f} → {run.trimmed[1]:.1f} MB" if run.trimmed else ""),
                flush=True,
            )

    with (options.out / f"series{options.tag}.csv").open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["mode", "variant", "connections", "seconds", "rss_mb", "load1"])
        for run in runs:
            for n, seconds, mb, load in run.samples:
                writer.writerow([run.mode, run.variant, n, f"{seconds:.1f}", f"{mb:.2f}", f"{load:.2f}"])
    chart(runs, options.out / f"rss{options.tag}.png")

    print(f"\nslopes after the first {options.warmup_seconds:.0f} s; backlog read every {options.check_seconds} s")
    print("| run | connections | conn/s | RSS start → end (MB) | MB per 100k connections | MB per hour |")
    print("|---|---|---|---|---|---|")
    for run in runs:
        first, last = run.samples[0], run.samples[-1]
        per_connections = run.slope(options.warmup_seconds, per="connections")
        print(
            f"| {run.label} | {last[0]:,} | {last[0] / last[1]:.0f} | {first[2]:.1f} → {last[2]:.1f} | "
            + ("–" if run.mode == "idle" else f"{per_connections:+.2f}")
            + f" | {run.slope(options.warmup_seconds, per='hour'):+.1f} |"
        )
    loads = [load for run in runs for *_, load in run.samples]
    print(f"load average (1 min) during the runs: {min(loads):.2f}-{max(loads):.2f}")


if __name__ == "__main__":
    main()
