"""Soak and burst: the whole system under steady load for a long time, then under twice its capacity (issue 12).

    eval "$(scripts/deps.sh)" && uv run --frozen python bench/soak.py --minutes 30 --burst-minutes 2 --out soak-out

One run, on a private RabbitMQ vhost and database (both removed at the end), all five services as real processes
and Postfix's smtp-sink as the outbound relay (the same start-up as the end-to-end tests):

1. Set-up through the public interfaces: an account (CLI), a topic and stream, and an automation rule (tag every
   mail whose subject contains "soak") through the gateway.
2. Capacity: a short ramp of offered SMTP rates (x1.5 per step) until the rate at which mail becomes readable
   falls below 3/4 of the offered rate; the capacity is the highest readable rate any step reached. Then the
   backlog drains. `--capacity N` skips the ramp.
3. Soak: half the capacity for `--minutes`. Burst: twice the capacity for `--burst-minutes`. Recovery: half the
   capacity again for `--recovery-minutes`. Then no load until everything has drained.

Throughout: SMTP clients (8 threads, reused connections, open-loop schedule) send unique mails and retry any 4xx or
dropped connection after 2 s, as an MTA would; a gateway SSE listener (`GET /v1/events`) notes when each mail
became readable (`message.received`); agents reply over the gateway to every `--reply-every`th mail; a watcher
notes when each reply reaches the relay. Every `--sample-seconds` it samples each service's RSS and established
TCP connections (psutil) and the ready messages of every queue of the vhost (passive declares).

At the end it counts, in the database and at the relay: every mail that got 250 stored exactly once, every reply
at the relay exactly once, every queue empty. It writes to `--out`: series.csv (one row per sample interval),
mails.csv, replies.csv, summary.json and the PNG charts (bench/soak_charts.py), and exits 1 if an invariant failed.
"""

import argparse
import asyncio
import contextlib
import csv
import itertools
import json
import os
import queue
import re
import shutil
import smtplib
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

import aio_pika
import httpx
import psutil
from prometheus_client.parser import text_string_to_metric_families
from pymongo import MongoClient

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from soak_charts import render  # noqa: E402

from tests.e2e.conftest import System, running_system  # noqa: E402
from tests.e2e.scenarios_support import new_account, new_stream  # noqa: E402
from tests.support.backends import provide  # noqa: E402

SERVICES = ("ingest", "inbox", "automation", "sender", "domains")
DATABASE_EVERY_TICKS = 6  # each service's database command times, every 6th sample (30 s by default)
SUBJECT = re.compile(rb"^Subject: Re: soak (\d+)\r?$", re.MULTILINE)
RETRY_AFTER_S = 2.0
SMTP_THREADS = 8
AGENT_THREADS = 3
WORK_QUEUES = (
    "ingest.analyse", "inbox.store", "inbox.delivery", "inbox.actions", "automation.evaluate", "sender.replies",
    "sender.bounces",
)  # fmt: skip
RECONNECT_EVERY = 50  # mails per SMTP connection, as an MTA's connection cache would


class TempDirs:
    """What `running_system` needs of pytest's tmp_path_factory."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.counter = itertools.count()

    def mktemp(self, name: str) -> Path:
        path = self.base / f"{name}{next(self.counter)}"
        path.mkdir(parents=True)
        return path


@dataclass
class Mail:
    n: int
    scheduled_at: float
    message_id: str = ""
    accepted_at: float | None = None
    readable_at: float | None = None
    conversation_id: str | None = None
    refusals: int = 0


@dataclass
class Reply:
    n: int
    posted_at: float | None = None
    message_id: str | None = None
    relayed_at: float | None = None
    failures: int = 0
    outcome_unknown: bool = False


@dataclass
class Record:
    """Everything the threads observe; wall-clock times (time.time()), so file mtimes at the relay compare."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    mails: dict[int, Mail] = field(default_factory=dict)
    replies: dict[int, Reply] = field(default_factory=dict)
    refused_at: list[float] = field(default_factory=list)  # every 4xx or dropped connection (an attempt)
    refused_mail: list[int] = field(default_factory=list)  # the mail of each attempt: retries count once per mail
    samples: list[dict] = field(default_factory=list)
    # (time, service, command, collection, calls, seconds): cumulative, from each service's /metrics
    database_times: list[tuple[float, str, str, str, float, float]] = field(default_factory=list)
    phases: list[tuple[str, float, float]] = field(default_factory=list)  # (name, start, rate)
    errors: list[str] = field(default_factory=list)

    def accepted(self) -> int:
        with self.lock:
            return sum(1 for m in self.mails.values() if m.accepted_at is not None)

    def unreadable(self) -> int:
        with self.lock:
            return sum(1 for m in self.mails.values() if m.accepted_at is not None and m.readable_at is None)

    def replies_pending(self) -> int:
        with self.lock:
            return sum(1 for r in self.replies.values() if r.relayed_at is None)


# --- load -----------------------------------------------------------------------------------------------------


class SmtpLoad:
    """Open-loop SMTP load: a scheduler emits mails at the current rate; worker threads send them; a 4xx or a
    dropped connection puts the mail back after RETRY_AFTER_S (the same Message-ID: the inbox dedupes it)."""

    def __init__(self, record: Record, port: int, rcpt: str) -> None:
        self.record, self.port, self.rcpt = record, port, rcpt
        self.rate = 0.0
        self.work: queue.Queue[Mail | None] = queue.Queue()
        self.stop = threading.Event()
        self.counter = itertools.count()
        self.threads = [threading.Thread(target=self._scheduler, daemon=True)]
        self.threads += [threading.Thread(target=self._worker, daemon=True) for _ in range(SMTP_THREADS)]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def close(self) -> None:
        self.stop.set()
        for _ in range(SMTP_THREADS):
            self.work.put(None)
        for thread in self.threads:
            thread.join(60)

    def _scheduler(self) -> None:
        due = time.time()
        while not self.stop.is_set():
            if self.rate <= 0:
                self.stop.wait(0.05)  # idle: pacing of the load generator
                due = time.time()
                continue
            due += 1.0 / self.rate
            delay = due - time.time()
            if delay > 0:
                self.stop.wait(delay)  # pacing of the load generator, not a wait for a condition
            n = next(self.counter)
            mail = Mail(n, due, message_id=f"<soak-{n}-{uuid.uuid4().hex[:12]}@customer.example>")
            with self.record.lock:
                self.record.mails[n] = mail
            self.work.put(mail)

    def _worker(self) -> None:
        smtp: smtplib.SMTP | None = None
        sent_on_connection = 0
        while True:
            mail = self.work.get()
            if mail is None:
                break
            try:
                if smtp is None or sent_on_connection >= RECONNECT_EVERY:
                    _quit(smtp)
                    smtp = smtplib.SMTP("127.0.0.1", self.port, timeout=60)
                    smtp.ehlo("mta.customer.example")
                    sent_on_connection = 0
                smtp.sendmail(f"c{mail.n}@customer.example", [self.rcpt], _raw_mail(mail))
                sent_on_connection += 1
                with self.record.lock:
                    mail.accepted_at = time.time()
            except (smtplib.SMTPException, OSError) as exc:
                permanent = isinstance(exc, smtplib.SMTPResponseException) and exc.smtp_code >= 500
                if isinstance(exc, smtplib.SMTPRecipientsRefused):
                    permanent = any(code >= 500 for code, _ in exc.recipients.values())
                with self.record.lock:
                    mail.refusals += 1
                    self.record.refused_at.append(time.time())
                    self.record.refused_mail.append(mail.n)
                    if permanent:
                        self.record.errors.append(f"mail {mail.n}: permanent refusal {exc!r}")
                _quit(smtp)
                smtp = None
                if not permanent:
                    threading.Timer(RETRY_AFTER_S, self.work.put, args=(mail,)).start()
        _quit(smtp)


def _quit(smtp: smtplib.SMTP | None) -> None:
    if smtp is not None:
        with contextlib.suppress(Exception):
            smtp.quit()


def _raw_mail(mail: Mail) -> bytes:
    body = (
        f"From: Customer {mail.n} <c{mail.n}@customer.example>\r\nTo: support@acme.test\r\n"
        f"Subject: soak {mail.n:07d}\r\nMessage-ID: {mail.message_id}\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
    )
    text = f"Hello, my order {mail.n} has not arrived yet. Could you check where it is? " * 8
    return (body + text + "\r\n").encode()


class EventReader:
    """The gateway's SSE stream: notes when each mail became readable; hands mails to reply to the agents.
    Reconnects with Last-Event-ID (the gateway replays what was missed) if the stream breaks."""

    def __init__(self, record: Record, gateway: str, api_key: str, agents: "Agents", reply_every: int) -> None:
        self.record, self.gateway, self.api_key = record, gateway, api_key
        self.agents, self.reply_every = agents, reply_every
        self.stop = threading.Event()
        self.connected = threading.Event()
        self.last_id: str | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self.thread.start()
        if not self.connected.wait(30):
            raise RuntimeError("the event stream did not open")

    def close(self) -> None:
        self.stop.set()
        self.thread.join(15)

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                self._read()
            except Exception as exc:
                if not self.stop.is_set():
                    with self.record.lock:
                        self.record.errors.append(f"event stream: {exc!r} (reconnecting)")
                    self.stop.wait(1)  # back-off before reconnecting

    def _read(self) -> None:
        headers = {"Authorization": f"Bearer {self.api_key}"}
        if self.last_id:
            headers["Last-Event-ID"] = self.last_id
        with (
            httpx.Client(base_url=self.gateway, headers=headers, timeout=httpx.Timeout(10, read=60)) as client,
            client.stream("GET", "/v1/events") as response,
        ):
            response.raise_for_status()
            name, data, event_id = None, [], None
            for line in response.iter_lines():
                if self.stop.is_set():
                    return
                if line.startswith(": connected"):
                    self.connected.set()
                elif line.startswith("event:"):
                    name = line.partition(":")[2].strip()
                elif line.startswith("id:"):
                    event_id = line.partition(":")[2].strip()
                elif line.startswith("data:"):
                    data.append(line.partition(":")[2].strip())
                elif line == "":
                    if name == "message.received":
                        self._readable(json.loads("\n".join(data)))
                    if event_id:
                        self.last_id = event_id
                    name, data, event_id = None, [], None

    def _readable(self, event: dict) -> None:
        subject = event.get("subject") or ""
        if not subject.startswith("soak "):
            return
        n = int(subject.split()[1])
        now = time.time()
        with self.record.lock:
            mail = self.record.mails.get(n)
            if mail is None or mail.readable_at is not None:
                return
            mail.readable_at, mail.conversation_id = now, event["conversation_id"]
        if n % self.reply_every == 0:
            self.agents.work.put((n, event["conversation_id"]))


class Agents:
    """Agents replying over the gateway (no template: the text is what goes out)."""

    def __init__(self, record: Record, gateway: str, api_key: str) -> None:
        self.record, self.gateway, self.api_key = record, gateway, api_key
        self.work: queue.Queue[tuple[int, str] | None] = queue.Queue()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(AGENT_THREADS)]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def close(self) -> None:
        for _ in self.threads:
            self.work.put(None)
        for thread in self.threads:
            thread.join(30)

    def _run(self) -> None:
        headers = {"Authorization": f"Bearer {self.api_key}"}
        with httpx.Client(base_url=self.gateway, headers=headers, timeout=30) as api:
            while (item := self.work.get()) is not None:
                n, conversation_id = item
                with self.record.lock:
                    reply = self.record.replies.setdefault(n, Reply(n))
                text = f"Thanks for writing about order {n}. It left our warehouse today."
                try:
                    posted_at = time.time()
                    response = api.post(
                        f"/v1/conversations/{conversation_id}/replies", json={"text": text, "apply_template": False}
                    )
                    response.raise_for_status()
                    with self.record.lock:
                        reply.posted_at, reply.message_id = posted_at, response.json()["message_id"]
                except httpx.HTTPError as exc:
                    # A timeout after the request went out leaves its outcome unknown: the reply may have been taken,
                    # and posting it again would send a second, different reply. Such a reply is not retried.
                    unknown = isinstance(exc, httpx.ReadTimeout)
                    with self.record.lock:
                        reply.failures += 1
                        reply.outcome_unknown = reply.outcome_unknown or unknown
                        self.record.errors.append(f"reply {n}: {exc!r}")
                    if reply.failures < 5 and not unknown:
                        threading.Timer(RETRY_AFTER_S, self.work.put, args=((n, conversation_id),)).start()


class RelayWatcher:
    """Notes when each reply reached the relay (the file's mtime) and how many times."""

    def __init__(self, record: Record, directory: Path) -> None:
        self.record, self.directory = record, directory
        self.seen: set[str] = set()
        self.counts: Counter[int] = Counter()
        self.unparsed: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(15)
        self.scan()

    def _run(self) -> None:
        while not self.stop.wait(0.5):  # polling interval of the watcher
            self.scan()

    def scan(self) -> None:
        pending = []
        for entry in os.scandir(self.directory):
            if entry.name in self.seen:
                continue
            stat = entry.stat()
            match = SUBJECT.search(Path(entry.path).read_bytes()[:8192])
            if match is None:  # smtp-sink may still be writing it
                pending.append(entry.name)
                continue
            self.seen.add(entry.name)
            n = int(match.group(1))
            self.counts[n] += 1
            with self.record.lock:
                reply = self.record.replies.setdefault(n, Reply(n))
                if reply.relayed_at is None:
                    reply.relayed_at = stat.st_mtime
        self.unparsed = pending


# --- sampling ---------------------------------------------------------------------------------------------------


class Sampler:
    """Every `interval` s: RSS, CPU and established TCP connections of each service, the database server's RSS
    and CPU when it runs on this machine, the 1-minute load average, and ready messages per queue."""

    def __init__(self, record: Record, system: System, interval: float) -> None:
        self.record, self.system, self.interval = record, system, interval
        self.processes = {name: psutil.Process(system.processes[name].proc.pid) for name in SERVICES}
        self.ops_urls = {name: system.processes[name].ops_url for name in SERVICES}
        database = local_listener(urlsplit(system.env["MONGODB_URI"]).port or 27017)
        if database is not None:  # a remote or containerised database: its CPU is not ours to see
            self.processes["database"] = database
        self.amqp_url = system.env["AMQP_URL"]
        self.vhost = unquote(urlsplit(self.amqp_url).path[1:]) or "/"
        self.stop = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def start(self) -> None:
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(30)

    def queue_names(self) -> list[str]:
        if not shutil.which("rabbitmqctl"):  # a remote broker: the work queues of docs/architecture.md
            return list(WORK_QUEUES)
        out = subprocess.run(
            ["rabbitmqctl", "-q", "list_queues", "-p", self.vhost, "name", "--formatter", "json"],
            capture_output=True,
            check=True,
            timeout=120,
        )
        return sorted(q["name"] for q in json.loads(out.stdout or b"[]"))

    async def _run(self) -> None:
        connection = await aio_pika.connect_robust(self.amqp_url)
        names = await asyncio.to_thread(self.queue_names)
        async with connection:
            for tick in itertools.count():
                if tick and tick % 30 == 0:  # retry queues appear when first needed
                    with contextlib.suppress(Exception):
                        names = await asyncio.to_thread(self.queue_names)
                sample: dict = {"t": time.time(), "load_average_1m": os.getloadavg()[0]}
                for name, process in self.processes.items():
                    try:
                        sample[f"rss_mb_{name}"] = process.memory_info().rss / 2**20
                        sample[f"cpu_pct_{name}"] = process.cpu_percent()  # since the previous sample
                        sample[f"connections_{name}"] = sum(
                            1 for c in process.net_connections(kind="tcp") if c.status == psutil.CONN_ESTABLISHED
                        )
                    except psutil.Error:
                        sample[f"rss_mb_{name}"] = sample[f"connections_{name}"] = sample[f"cpu_pct_{name}"] = None
                try:  # a busy broker must cost this sample its queue depths, not end the sampling
                    await asyncio.wait_for(self._depths(connection, names, sample), timeout=max(self.interval, 10))
                except Exception as exc:
                    with self.record.lock:
                        self.record.errors.append(f"queue depths at {sample['t']:.0f}: {exc!r}")
                with self.record.lock:
                    self.record.samples.append(sample)
                if tick % DATABASE_EVERY_TICKS == 0:
                    await asyncio.to_thread(self._database_times, sample["t"])
                if await asyncio.to_thread(self.stop.wait, self.interval):
                    return

    def _database_times(self, at: float) -> None:
        """Each service's `mailstream_database_command_seconds` so far: which command got slower, and whose."""
        rows = []
        for name, url in self.ops_urls.items():
            try:
                text = httpx.get(f"{url}/metrics", timeout=10).text
            except httpx.HTTPError:
                continue  # a busy service costs this sample its line, not the run
            totals: dict[tuple[str, str], list[float]] = {}
            for family in text_string_to_metric_families(text):
                if family.name != "mailstream_database_command_seconds":
                    continue
                for sample in family.samples:
                    key = (sample.labels["command"], sample.labels["collection"])
                    if sample.name.endswith("_count"):
                        totals.setdefault(key, [0.0, 0.0])[0] = sample.value
                    elif sample.name.endswith("_sum"):
                        totals.setdefault(key, [0.0, 0.0])[1] = sample.value
            rows += [(at, name, command, collection, calls, seconds) for (command, collection), (calls, seconds) in totals.items()]  # fmt: skip
        with self.record.lock:
            self.record.database_times.extend(rows)

    async def _depths(self, connection: aio_pika.abc.AbstractRobustConnection, names: list[str], sample: dict) -> None:
        channel = await connection.channel()
        for name in names:
            try:
                declared = await channel.declare_queue(name, passive=True)
                sample[f"queue_{name}"] = declared.declaration_result.message_count
            except aio_pika.exceptions.ChannelClosed:
                channel = await connection.channel()
        with contextlib.suppress(Exception):
            await channel.close()

    def latest_depth(self) -> int | None:
        with self.record.lock:
            if not self.record.samples:
                return None
            with_depths = [s for s in self.record.samples if any(k.startswith("queue_") for k in s)]
            if not with_depths or with_depths[-1] is not self.record.samples[-1]:
                return None  # the latest sample has no depths: not known to be empty
            last = with_depths[-1]
        return sum(v for k, v in last.items() if k.startswith("queue_") and v and not _ignored_queue(k))


def _ignored_queue(column: str) -> bool:
    """The live journal nobody consumes (bounded) is not work waiting."""
    return "journal" in column


# --- the run ----------------------------------------------------------------------------------------------------


def phase(record: Record, load: SmtpLoad, name: str, rate: float) -> None:
    with record.lock:
        record.phases.append((name, time.time(), rate))
    load.rate = rate
    print(f"{time.strftime('%H:%M:%S')} {name}: {rate:.1f} mails/s", flush=True)


def run_for(seconds: float) -> None:
    time.sleep(seconds)  # the length of a load phase, not a wait for a condition


def readable_rate(record: Record, start: float, end: float) -> float:
    with record.lock:
        count = sum(1 for m in record.mails.values() if m.readable_at is not None and start <= m.readable_at < end)
    return count / (end - start)


def find_capacity(record: Record, load: SmtpLoad, step_seconds: float, drain_timeout: float) -> float:
    rate, best = 2.0, 0.0
    while True:
        phase(record, load, "ramp", rate)
        start = time.time()
        run_for(step_seconds)
        measured = readable_rate(record, start + step_seconds / 3, time.time())
        best = max(best, measured)
        print(f"  offered {rate:.1f}/s, readable {measured:.1f}/s", flush=True)
        if measured < 0.75 * rate or rate > 200:
            break
        rate *= 1.5
    phase(record, load, "ramp drain", 0)
    wait_drained(record, None, drain_timeout)
    return best


def wait_drained(record: Record, sampler: "Sampler | None", timeout: float) -> bool:
    """Until every accepted mail is readable, every posted reply relayed and (with a sampler) every queue empty."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        queues_empty = sampler is None or sampler.latest_depth() == 0
        if record.unreadable() == 0 and record.replies_pending() == 0 and queues_empty:
            return True
        time.sleep(1)  # polling interval of the drain check
    return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=30, help="soak at half the capacity")
    parser.add_argument("--burst-minutes", type=float, default=2, help="burst at twice the capacity")
    parser.add_argument("--recovery-minutes", type=float, default=3, help="half the capacity again after the burst")
    parser.add_argument("--capacity", type=float, default=None, help="mails/s; skips the ramp")
    parser.add_argument("--ramp-step-seconds", type=float, default=20)
    parser.add_argument("--reply-every", type=int, default=4, help="agents reply to every Nth mail")
    parser.add_argument("--sample-seconds", type=float, default=5)
    parser.add_argument("--drain-timeout", type=float, default=600)
    parser.add_argument("--out", type=Path, required=True)
    options = parser.parse_args()
    options.out.mkdir(parents=True, exist_ok=True)
    amqp = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
    mongodb_uri = os.environ.get("MONGODB_URI", "mongodb://127.0.0.1:27017/")
    record = Record()
    with (
        provide(amqp, mongodb_uri) as backends,
        tempfile.TemporaryDirectory(prefix="soak-logs-") as logs,
        running_system(backends, TempDirs(Path(logs)), "soak", {"LOG_LEVEL": "WARNING"}) as system,
    ):
        summary = soak(system, backends.description, record, options)
        if summary["invariants_failed"]:
            for name in SERVICES:
                print(f"--- {name}\n{system.processes[name].logs(30)}")
    sys.exit(1 if summary["invariants_failed"] else 0)


def machine_note(record: Record) -> str:
    """Cores and the load average the samples saw: how shared the machine was during this run."""
    loads = [s["load_average_1m"] for s in record.samples if s.get("load_average_1m") is not None]
    if not loads:
        return f"{os.cpu_count()} cores"
    return f"{os.cpu_count()} cores, load average {min(loads):.1f}-{max(loads):.1f} during the run"


def soak(system: System, backend: str, record: Record, options: argparse.Namespace) -> dict:
    account, _ = new_account(system, "Soak")
    # A longer timeout than the e2e client's 10 s: set-up on a loaded shared machine can take longer than that.
    api = httpx.Client(base_url=system.gateway, headers={"Authorization": f"Bearer {account['api_key']}"}, timeout=60)
    stream = new_stream(api, "support@acme.test")
    rule = api.post(
        "/v1/automation/rules",
        json={
            "name": "Tag soak mail",
            "conditions": [{"field": "subject", "operator": "contains", "value": "soak"}],
            "actions": [{"type": "add_tags", "tags": ["soak"]}],
        },
    )
    assert rule.status_code == 201, rule.text
    api_key = account["api_key"]

    load = SmtpLoad(record, system.smtp_port, stream["forwarding_address"])
    agents = Agents(record, system.gateway, api_key)
    events = EventReader(record, system.gateway, api_key, agents, options.reply_every)
    relay = RelayWatcher(record, system.relay.directory)
    sampler = Sampler(record, system, options.sample_seconds)
    began = time.time()
    for part in (agents, events, relay, load, sampler):
        part.start()
    drained = False
    try:
        capacity = options.capacity or find_capacity(record, load, options.ramp_step_seconds, options.drain_timeout)
        print(f"capacity: {capacity:.1f} mails/s readable", flush=True)
        phase(record, load, "soak", capacity / 2)
        run_for(options.minutes * 60)
        phase(record, load, "burst", capacity * 2)
        run_for(options.burst_minutes * 60)
        phase(record, load, "recovery", capacity / 2)
        run_for(options.recovery_minutes * 60)
        phase(record, load, "drain", 0)
        drained = wait_drained(record, sampler, options.drain_timeout)
        with record.lock:
            record.phases.append(("end", time.time(), 0))
    finally:
        load.close()
        events.close()
        agents.close()
        relay.close()
        sampler.close()

    stored = stored_counts(system)
    summary = summarise(record, options, capacity, began, stored, relay, drained, backend)
    write_outputs(record, options, summary, stored, relay, began)
    render(options.out)
    print(json.dumps(summary, indent=2))
    return summary


def stored_counts(system: System) -> Counter[str]:
    """Inbound messages stored per Message-ID (the inbox's messages collection, read directly)."""
    with MongoClient(system.env["MONGODB_URI"], serverSelectionTimeoutMS=10000) as client:
        cursor = client[system.env["MONGODB_DATABASE"]].messages.find(
            {"direction": "inbound"}, {"message_id_header": 1}
        )
        return Counter(doc["message_id_header"].strip().strip("<>") for doc in cursor)


def percentile(values: list[float], p: int) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


def phase_bounds(record: Record, name: str) -> tuple[float, float] | None:
    for (current, start, _), (_, end, _) in itertools.pairwise(record.phases):
        if current == name:
            return start, end
    return None


def fit_slope(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of (hours, MB), MB per hour."""
    if len(points) < 3:
        return None
    xs, ys = zip(*points, strict=True)
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
    denominator = sum((x - mean_x) ** 2 for x in xs)
    return sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / denominator if denominator else None


def summarise(
    record: Record,
    options: argparse.Namespace,
    capacity: float,
    began: float,
    stored: Counter[str],
    relay: RelayWatcher,
    drained: bool,
    backend: str,
) -> dict:
    mails = list(record.mails.values())
    accepted = [m for m in mails if m.accepted_at is not None]
    replies = [r for r in record.replies.values() if r.posted_at is not None]
    summary: dict = {
        "backend": backend,
        "machine": machine_note(record),
        "capacity_mails_per_s": round(capacity, 2),
        "reply_every": options.reply_every,
        "accepted": len(accepted),
        "refusals_4xx_or_dropped": len(record.refused_at),  # attempts: a mail retried 10 times counts 10
        "mails_refused_at_least_once": len(set(record.refused_mail)),
        "replies_posted": len(replies),
        "drained": drained,
        "errors": record.errors[:20],
        "phases": {},
    }
    for name in ("soak", "burst", "recovery"):
        bounds = phase_bounds(record, name)
        if bounds is None:
            continue
        start, end = bounds
        in_phase = [m for m in accepted if start <= m.accepted_at < end]
        latencies = [m.readable_at - m.accepted_at for m in in_phase if m.readable_at]
        reply_latencies = [r.relayed_at - r.posted_at for r in replies if r.relayed_at and start <= r.posted_at < end]
        refused = [n for t, n in zip(record.refused_at, record.refused_mail, strict=True) if start <= t < end]
        summary["phases"][name] = {
            "seconds": round(end - start, 1),
            "offered_per_s": round(next(rate for n, s, rate in record.phases if n == name), 2),
            "accepted_per_s": round(len(in_phase) / (end - start), 2),
            "refused_4xx": len(refused),  # attempts
            "mails_refused": len(set(refused)),
            "readable_p50_s": _round(percentile(latencies, 50)),
            "readable_p99_s": _round(percentile(latencies, 99)),
            "reply_to_relay_p50_s": _round(percentile(reply_latencies, 50)),
            "reply_to_relay_p99_s": _round(percentile(reply_latencies, 99)),
        }
    burst = phase_bounds(record, "burst")
    if burst:
        burst_mails = [m for m in accepted if m.accepted_at < burst[1]]
        last_readable = max((m.readable_at for m in burst_mails if m.readable_at), default=burst[1])
        recovered = all(m.readable_at for m in burst_mails)
        # None: some mail accepted before the burst's end never became readable while the run watched
        summary["recovery_seconds"] = round(max(0.0, last_readable - burst[1]), 1) if recovered else None
        depths = [(s["t"], _work_depth(s)) for s in record.samples]
        peak = max((d for t, d in depths if burst[0] <= t), default=0)
        back = next((t for t, d in depths if t >= burst[1] and d <= 2), None)
        summary["burst_peak_queue_depth"] = peak
        summary["queues_back_under_3_after_s"] = round(back - burst[1], 1) if back else None

    soak_bounds = phase_bounds(record, "soak")
    slopes, growth = {}, {}
    for name in SERVICES:
        column = f"rss_mb_{name}"
        series = [(s["t"], s[column]) for s in record.samples if s.get(column) is not None]
        if soak_bounds:
            points = [((t - soak_bounds[0]) / 3600, v) for t, v in series if soak_bounds[0] <= t < soak_bounds[1]]
            slope = fit_slope(points)
            slopes[name] = _round(slope)
            start_rss = next((v for t, v in series if t >= soak_bounds[0]), None)
            if start_rss is not None and series:
                growth[name] = round(series[-1][1] - start_rss, 1)
    summary["rss_slope_mb_per_hour_during_soak"] = slopes
    summary["rss_growth_mb_soak_start_to_end"] = growth
    summary["rss_end_mb"] = (
        {n: _round(record.samples[-1].get(f"rss_mb_{n}")) for n in SERVICES} if record.samples else {}
    )

    lost = [m.n for m in accepted if stored.get(m.message_id.strip("<>"), 0) == 0]
    duplicated = [m.n for m in accepted if stored.get(m.message_id.strip("<>"), 0) > 1]
    unposted = [r.n for r in record.replies.values() if r.posted_at is None and not r.outcome_unknown]
    not_relayed = [r.n for r in replies if relay.counts.get(r.n, 0) == 0]
    relayed_twice = [n for n, c in relay.counts.items() if c > 1]
    with_depths = [s for s in record.samples if any(k.startswith("queue_") for k in s)]
    final_depth = _work_depth(with_depths[-1]) if with_depths else None
    summary["accepted_not_stored_count"] = len(lost)
    summary["replies_outcome_unknown"] = [r.n for r in record.replies.values() if r.outcome_unknown][:20]
    summary["invariants"] = {
        "accepted_but_not_stored": lost[:20],
        "stored_more_than_once": duplicated[:20],
        "replies_not_posted": unposted[:20],
        "replies_not_at_relay": not_relayed[:20],
        "replies_at_relay_more_than_once": relayed_twice[:20],
        "final_queue_depth": final_depth,
    }
    summary["invariants_failed"] = bool(
        lost or duplicated or unposted or not_relayed or relayed_twice or final_depth != 0 or not drained
    )
    return summary


def _work_depth(sample: dict) -> int:
    return sum(v for k, v in sample.items() if k.startswith("queue_") and v and not _ignored_queue(k))


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def phase_at(record: Record, t: float) -> str:
    current = ""
    for name, start, _ in record.phases:
        if start <= t:
            current = name
    return current


def write_outputs(
    record: Record, options: argparse.Namespace, summary: dict, stored: Counter[str], relay: RelayWatcher, began: float
) -> None:
    out: Path = options.out
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    with (out / "mails.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["n", "message_id", "scheduled_s", "accepted_s", "readable_s", "refusals", "stored_count"])
        for m in sorted(record.mails.values(), key=lambda m: m.n):
            writer.writerow(
                [m.n, m.message_id, _rel(m.scheduled_at, began), _rel(m.accepted_at, began),
                 _rel(m.readable_at, began), m.refusals, stored.get(m.message_id.strip("<>"), 0)]
            )  # fmt: skip
    with (out / "replies.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["n", "message_id", "posted_s", "relayed_s", "relay_count"])
        for r in sorted(record.replies.values(), key=lambda r: r.n):
            writer.writerow(
                [r.n, r.message_id, _rel(r.posted_at, began), _rel(r.relayed_at, began), relay.counts.get(r.n, 0)]
            )
    write_series(record, out / "series.csv", began, options.sample_seconds)
    with (out / "database.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["t_s", "service", "command", "collection", "calls", "seconds"])
        for at, service, command, collection, calls, seconds in record.database_times:
            writer.writerow([_rel(at, began), service, command, collection, int(calls), f"{seconds:.6f}"])


def _rel(t: float | None, began: float) -> str:
    return "" if t is None else f"{t - began:.3f}"


def local_listener(port: int) -> psutil.Process | None:
    """The process listening on this TCP port of this machine, if it is visible (root sees every process)."""
    with contextlib.suppress(psutil.Error):
        for connection in psutil.net_connections(kind="tcp"):
            if connection.status == psutil.CONN_LISTEN and connection.laddr.port == port and connection.pid:
                return psutil.Process(connection.pid)
    return None


def write_series(record: Record, path: Path, began: float, interval: float) -> None:
    """One row per sample: rates and latency percentiles over the interval ending at the sample, and the sample."""
    queue_columns = sorted({k for s in record.samples for k in s if k.startswith("queue_")})
    columns = ["t_s", "phase", "offered_per_s", "accepted_per_s", "refused_4xx_per_s", "readable_per_s"]
    columns += ["relayed_per_s", "readable_p50_s", "readable_p99_s", "reply_relay_p50_s", "reply_relay_p99_s"]
    columns += [f"rss_mb_{n}" for n in SERVICES] + [f"connections_{n}" for n in SERVICES]
    columns += ["load_average_1m"] + [f"cpu_pct_{n}" for n in (*SERVICES, "database")]
    columns += ["rss_mb_database", "connections_database"]
    columns += queue_columns
    mails = list(record.mails.values())
    replies = list(record.replies.values())
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        previous = began
        for sample in record.samples:
            end = sample["t"]
            width = max(end - previous, 1e-6)
            readable = [
                m.readable_at - m.accepted_at for m in mails if m.readable_at and previous <= m.readable_at < end
            ]
            relayed = [r.relayed_at - r.posted_at for r in replies if r.relayed_at and r.posted_at and previous <= r.relayed_at < end]  # fmt: skip
            row = {
                "t_s": round(end - began, 2),
                "phase": phase_at(record, end),
                "offered_per_s": round(sum(1 for m in mails if previous <= m.scheduled_at < end) / width, 3),
                "accepted_per_s": round(
                    sum(1 for m in mails if m.accepted_at and previous <= m.accepted_at < end) / width, 3
                ),
                "refused_4xx_per_s": round(sum(1 for t in record.refused_at if previous <= t < end) / width, 3),
                "readable_per_s": round(len(readable) / width, 3),
                "relayed_per_s": round(len(relayed) / width, 3),
                "readable_p50_s": _round(percentile(readable, 50)),
                "readable_p99_s": _round(percentile(readable, 99)),
                "reply_relay_p50_s": _round(percentile(relayed, 50)),
                "reply_relay_p99_s": _round(percentile(relayed, 99)),
            }
            for key, value in sample.items():
                if key != "t":
                    row[key] = round(value, 2) if isinstance(value, float) else value
            writer.writerow(row)
            previous = end


if __name__ == "__main__":
    main()
