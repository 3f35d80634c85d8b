"""The sender service as a whole: `python -m mailstream_sender` worker processes draining reply commands from
RabbitMQ, with their `sender_deliveries` state writes (and `sender_mails` inserts, where the code has them), guard reads (stream, suppressions; cached per process since
the caches were added), DKIM signing (RSA-2048) and `delivery.reported` publishes, to Postfix's smtp-sink.

    eval "$(scripts/deps.sh)"   # AMQP_URL, MONGODB_URI
    uv run python bench/sender_service.py [--count 2000] [--workers 1 2] [--preload 3000]

It uses a private RabbitMQ vhost and database (like the tests), a stand-in domains service serving the key, and
pre-fills `sender.replies` before the workers start. Rate = sent mails / (last `sent` record - first one).
`--preload N` first writes N final delivery records of a day before (each with its ~5 KB mail, where the code under
test keeps it: in the record, or in `sender_mails` when the code has that collection), the steady state of a
service that keeps days of records (a server whose writes or `_id` look-ups slow with the collection pays for them).

What bounds it: `--profile` runs worker 0 under cProfile (written when it shuts down) and prints where its CPU
went, grouped by package (database driver, signing, SMTP, broker, the service's own code); every run also prints
the CPU seconds of worker 0 and of the database server process (`--db-pid`, default: the SecantusDB that
scripts/deps.sh started) over the run, and the mean wall time of each step from the worker's histograms. A
profile of the database server itself: run `py-spy record --pid <db pid>` alongside (see docs/benchmarks/sender.md).

The stream is written straight into the sender's own projection, `stream_settings`, as `stream.changed` leaves it
(the sender never reads inbox's `streams`); the projection is not empty at start, so no resync runs.
"""

import argparse
import asyncio
import cProfile  # noqa: F401 - the profiled worker runs `python -m cProfile`
import json
import os
import pstats
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import uuid4

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: E402
from pymongo import AsyncMongoClient  # noqa: E402

from mailstream_common import topology  # noqa: E402
from mailstream_common.broker import Broker  # noqa: E402
from mailstream_common.contracts import ReplyRequested  # noqa: E402
from mailstream_sender.repositories import mails  # noqa: E402
from tests.sender.domains_stub import DomainKey, DomainsStub  # noqa: E402
from tests.support import backends  # noqa: E402
from tests.support.processes import ServiceProcess, free_port  # noqa: E402
from tests.support.service_tokens import SENDER_TOKEN, service_env  # noqa: E402
from tests.support.smtp_sink import PostfixSink  # noqa: E402

TOKEN = SENDER_TOKEN  # the sender's credential towards (the stub of) domains
ACCOUNT = "b" * 32


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU seconds of a process so far (Linux /proc), or None."""
    if not pid:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def default_db_pid() -> int | None:
    state = Path(os.environ.get("MAILSTREAM_STATE", Path.home() / ".cache/mailstream/state"))
    with_pid = state / "secantusdb.pid"
    try:
        return int(with_pid.read_text().strip())
    except (OSError, ValueError):
        return None


GROUPS = (
    (
        "start-up (imports, pydantic schemas)",
        (
            "importlib",
            "<frozen",
            "_generate_schema",
            "_model_construction",
            "builtins.compile",
            "builtins.exec",
            "posix.listdir",
            "posix.stat",
            "marshal",
        ),
    ),
    ("database driver (pymongo, bson)", ("/pymongo/", "/bson/")),
    ("signing (dkim, cryptography)", ("/dkim/", "/cryptography/", "dkim_fast", "signing.py")),
    ("SMTP client (aiosmtplib)", ("/aiosmtplib/",)),
    ("broker (aio_pika, aiormq, pamqp)", ("/aio_pika/", "/aiormq/", "/pamqp/")),
    ("compose / templating / contracts", ("compose.py", "templating.py", "/pydantic", "contracts")),
    (
        "asyncio, selectors, ssl, sockets",
        ("/asyncio/", "selectors.py", "ssl.py", "socket.py", "_socket.socket", "<built-in method select"),
    ),
)


def profile_table(path: Path, top: int = 12) -> str:
    stats = pstats.Stats(str(path))
    total = sum(v[2] for v in stats.stats.values())  # tottime
    shares: dict[str, float] = {}
    rows = []
    for (file, line, name), (_cc, _nc, tottime, _cum, _callers) in stats.stats.items():
        where = f"{file}:{name}"
        group = next((g for g, keys in GROUPS if any(k in where for k in keys)), "other")
        if "epoll" in name or ("select" in name and "built-in" in file):
            group = "idle (waiting in epoll)"
        shares[group] = shares.get(group, 0.0) + tottime
        rows.append((tottime, f"{Path(file).name}:{line}({name})"))
    startup = shares.get("start-up (imports, pydantic schemas)", 0.0)
    busy = total - shares.get("idle (waiting in epoll)", 0.0) - startup
    out = [
        f"cProfile of worker 0 (whole process): {total:.1f} s profiled; {startup:.1f} s start-up; "
        f"{busy:.1f} s busy after start-up (shares below are of this)",
        "",
    ]
    out += ["| where (own time) | seconds | share of busy |", "| --- | ---: | ---: |"]
    for group, seconds in sorted(shares.items(), key=lambda kv: -kv[1]):
        if group.startswith(("idle", "start-up")):
            continue
        out.append(f"| {group} | {seconds:.2f} | {100 * seconds / max(busy, 1e-9):.0f}% |")
    out.append(f"| (idle, waiting in epoll) | {shares.get('idle (waiting in epoll)', 0.0):.2f} | - |")
    out += ["", "top functions by own time:", ""]
    out += [f"    {t:7.3f} s  {name}" for t, name in sorted(rows, reverse=True)[:top]]
    return "\n".join(out)


class ProfiledProcess(ServiceProcess):
    """The service under `python -m cProfile -o <file>`; the profile is written when it shuts down cleanly."""

    def __init__(self, *args, profile: Path, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.profile = profile

    def spawn(self) -> "ProfiledProcess":
        self.stop_requested = False
        log_file = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cProfile", "-o", str(self.profile), "-m", self.module],
            env={**os.environ, **self.env},
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        log_file.close()
        return self


def command(stream_id: str, size: int) -> ReplyRequested:
    message_id = uuid4().hex
    line = "Thank you for your message. Your order has shipped and should arrive within two days.\n"
    length = max(0, (size - 900) // 2)
    return ReplyRequested.model_validate(
        {
            "account_id": ACCOUNT,
            "stream_id": stream_id,
            "message_id": message_id,
            "message_id_header": f"<{message_id}@in.mailstream.test>",
            "from": {"name": "Acme Support", "address": "support@acme.test"},
            "to": [{"name": "Kana Customer", "address": "kana@example.net"}],
            "subject": "Re: My order has not arrived",
            "in_reply_to": "<original@mail.example.net>",
            "text": (line * (length // len(line) + 1))[:length],
            "requested_by": "bench",
        }
    )


async def preload(db, records: int, size: int, at: datetime) -> str:
    """`records` final delivery records written at `at`, each with a mail of `size` bytes, stored the way the code
    under test stores them; which way that was."""
    apart = hasattr(mails, "MAILS")  # the code keeps the mail bytes in a collection of their own
    raw = (b"X-Preloaded: yes\r\n\r\n" + b"0123456789abcdef" * (size // 16))[:size]
    for start in range(0, records, 200):
        ids = [uuid4().hex for _ in range(min(200, records - start))]
        state = {"state": "sent", "attempts": 1, "account_id": ACCOUNT, "recipients": ["kana@example.net"]}
        state |= {"created_at": at, "updated_at": at, "detail": "relay accepted", "smtp_code": 250}
        if apart:
            await db["sender_deliveries"].insert_many([{"_id": i, **state, "raw_kept": True} for i in ids])
            await db["sender_mails"].insert_many([{"_id": i, "account_id": ACCOUNT, "raw": raw} for i in ids])
        else:
            await db["sender_deliveries"].insert_many([{"_id": i, **state, "raw": raw} for i in ids])
    return "sender_mails" if apart else "in the record"


async def run_once(
    found: backends.Backends,
    workers: int,
    count: int,
    size: int,
    logs: Path,
    preloaded: int = 0,
    profile: Path | None = None,
    db_pid: int | None = None,
) -> dict:
    database = f"{found.database}_{workers}w"
    client = AsyncMongoClient(found.mongodb_uri, tz_aware=True)
    db = client[database]
    # Preloaded records are a day old; the run's own are those created since.
    this_run = {"created_at": {"$gte": datetime.now(UTC) - timedelta(hours=1)}}
    layout = await preload(db, preloaded, size, datetime.now(UTC) - timedelta(days=1)) if preloaded else None
    stream_id = uuid4().hex
    await db["stream_settings"].insert_one(  # sender's own projection of the stream (as stream.changed leaves it)
        {
            "_id": stream_id,
            "account_id": ACCOUNT,
            "topic_id": uuid4().hex,
            "address": "support@acme.test",
            "display_name": "Acme Support",
            "allow_agent_send": True,
            "deleted": False,
            "version": 1,
        }
    )
    broker = Broker(found.amqp_url, service="bench")
    await broker.connect()
    await broker.declare(topology.SENDER_REPLIES, topology.INBOX_DELIVERY)
    started = time.perf_counter()
    for start in range(0, count, 200):
        await asyncio.gather(*(broker.publish(command(stream_id, size)) for _ in range(min(200, count - start))))
    fill_seconds = time.perf_counter() - started

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    domains = DomainsStub(TOKEN, {"acme.test": DomainKey("acme.test", ACCOUNT, "ms1", key)}).start()
    sink = PostfixSink().start(dump=False)
    processes = []
    try:
        for n in range(workers):
            port = free_port()
            env = {
                "AMQP_URL": found.amqp_url,
                "MONGODB_URI": found.mongodb_uri,
                "MONGODB_DATABASE": database,
                **service_env(),
                "DOMAINS_URL": domains.url,
                "SENDER_SMTP_PORT": str(sink.port),
                "SENDER_HTTP_PORT": str(port),
                "LOG_LEVEL": "WARNING",
            }
            name, ops = f"sender-{workers}w-{n}", f"http://127.0.0.1:{port}"
            if profile is not None and n == 0:
                processes.append(ProfiledProcess(name, "mailstream_sender", env, ops, logs, profile=profile))
            else:
                processes.append(ServiceProcess(name, "mailstream_sender", env, ops, logs))
        load_start = os.getloadavg()
        db_cpu_start = cpu_seconds(db_pid)
        for process in processes:
            process.start()
        worker_cpu_start = cpu_seconds(processes[0].proc.pid)
        deadline = time.monotonic() + 600
        while await db["sender_deliveries"].count_documents({"state": "sent", **this_run}) < count:
            if time.monotonic() > deadline:
                states = (
                    await db["sender_deliveries"]
                    .aggregate([{"$match": this_run}, {"$group": {"_id": ["$state", "$detail"], "n": {"$sum": 1}}}])
                    .to_list()
                )
                raise RuntimeError(f"not all sent within 10 minutes; records by (state, detail): {states}")
            await asyncio.sleep(2 if preloaded else 0.5)  # each poll scans the collection: rarely when it is large
        worker_cpu = (cpu_seconds(processes[0].proc.pid) or 0) - (worker_cpu_start or 0)
        db_cpu = (cpu_seconds(db_pid) or 0) - (db_cpu_start or 0) if db_cpu_start is not None else None
        load_end = os.getloadavg()
        first = await db["sender_deliveries"].find_one(this_run, sort=[("created_at", 1)])
        last = await db["sender_deliveries"].find_one(this_run, sort=[("updated_at", -1)])
        seconds = (last["updated_at"] - first["created_at"]).total_seconds()
        async with httpx.AsyncClient(timeout=10) as http:
            breakdown = _breakdown((await http.get(f"{processes[0].ops_url}/metrics")).text)
    finally:
        for process in processes:
            process.stop()
        sink.stop()
        domains.stop()
        await broker.close()
        await client.drop_database(database)
        await client.close()
    return {
        "workers": workers,
        "count": count,
        "preloaded": preloaded,
        "preloaded_mails": layout,
        "fill_seconds": round(fill_seconds, 1),
        "mails_per_s": round(count / seconds, 1),
        "seconds": round(seconds, 2),
        "worker_0_mean_ms": breakdown,
        "worker_0_cpu_s": round(worker_cpu, 2),
        "db_server_cpu_s": None if db_cpu is None else round(db_cpu, 2),
        "load": f"{load_start[0]:.1f} -> {load_end[0]:.1f}",
    }


def _breakdown(metrics: str) -> dict[str, float]:
    """Mean milliseconds of the first worker's histograms: whole handler, SMTP, signing (per mail), and each of the
    delivery writes (`begin`: sending; `mail`: the signed bytes, where the code stores them apart; `finish`: the
    outcome)."""
    sums: dict[str, float] = {}
    for line in metrics.splitlines():
        for name, key in (
            ('mailstream_broker_handle_seconds_sum{queue="sender.replies"}', "handle_sum"),
            ('mailstream_broker_handle_seconds_count{queue="sender.replies"}', "handle_count"),
            ("mailstream_sender_smtp_seconds_sum", "smtp_sum"),
            ("mailstream_sender_smtp_seconds_count", "smtp_count"),
            ("mailstream_sender_sign_seconds_sum", "sign_sum"),
            ("mailstream_sender_sign_seconds_count", "sign_count"),
            ('mailstream_sender_record_write_seconds_sum{step="begin"}', "begin_sum"),
            ('mailstream_sender_record_write_seconds_count{step="begin"}', "begin_count"),
            ('mailstream_sender_record_write_seconds_sum{step="mail"}', "mail_sum"),
            ('mailstream_sender_record_write_seconds_count{step="mail"}', "mail_count"),
            ('mailstream_sender_record_write_seconds_sum{step="finish"}', "finish_sum"),
            ('mailstream_sender_record_write_seconds_count{step="finish"}', "finish_count"),
        ):
            if line.startswith(name + " "):
                sums[key] = float(line.split()[-1])
    return {
        what: round(1000 * sums.get(f"{what}_sum", 0) / max(1.0, sums.get(f"{what}_count", 0)), 1)
        for what in ("handle", "smtp", "sign", "begin", "mail", "finish")
        if f"{what}_count" in sums
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--size", type=int, default=5000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--preload", type=int, default=0, help="final records (with mails) already there")
    parser.add_argument("--profile", action="store_true", help="run worker 0 under cProfile and print where it went")
    parser.add_argument("--db-pid", type=int, default=None, help="the database server's pid, for its CPU seconds")
    parser.add_argument("--json", action="store_true", help="print the raw JSON instead of the markdown table")
    args = parser.parse_args()
    db_pid = args.db_pid or default_db_pid()
    logs = Path(os.environ.get("BENCH_LOG_DIR", "/tmp/mailstream-bench-logs"))
    logs.mkdir(parents=True, exist_ok=True)
    results: dict[str, object] = {"load_before": os.getloadavg(), "runs": []}
    profiles = []
    with backends.provide(os.environ.get("AMQP_URL"), os.environ.get("MONGODB_URI")) as found:
        results["server"] = _server(found.mongodb_uri)
        for workers in args.workers:
            profile = logs / f"sender-{workers}w-{os.getpid()}.prof" if args.profile else None
            run = asyncio.run(
                run_once(found, workers, args.count, args.size, logs, args.preload, profile=profile, db_pid=db_pid)
            )
            results["runs"].append(run)  # type: ignore[union-attr]
            if profile is not None and profile.exists():
                profiles.append((workers, profile))
    results["load_after"] = os.getloadavg()
    if args.json:
        json.dump(results, sys.stdout, indent=2, default=str)
        print()
        return
    print(f"{results['server']}; {args.count} reply commands of ~{args.size} bytes, RSA-2048 DKIM, to smtp-sink;"
          f" preloaded records: {args.preload}\n")  # fmt: skip
    print(
        "| workers | mails/s | handler ms | sending write ms | mail write ms | outcome write ms | sign ms | SMTP ms |"
        " worker 0 CPU s / wall s | DB server CPU s | load avg |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for run in results["runs"]:  # type: ignore[union-attr]
        b = run["worker_0_mean_ms"]
        print(
            f"| {run['workers']} | {run['mails_per_s']} | {b.get('handle', '-')} | {b.get('begin', '-')} | "
            f"{b.get('mail', '-')} | {b.get('finish', '-')} | {b.get('sign', '-')} | {b.get('smtp', '-')} | "
            f"{run['worker_0_cpu_s']} / {run['seconds']} | {run['db_server_cpu_s']} | {run['load']} |"
        )
    for workers, profile in profiles:
        print(f"\n{workers} worker(s), " + profile_table(profile))


def _server(uri: str) -> str:
    from pymongo import MongoClient

    with MongoClient(uri) as client:
        info = client.admin.command("buildInfo")
    if info.get("secantusVersion"):
        return f"SecantusDB {info['secantusVersion']}"
    return f"MongoDB-wire server {info['version']} (not SecantusDB; check what it is before calling it MongoDB)"


if __name__ == "__main__":
    main()
