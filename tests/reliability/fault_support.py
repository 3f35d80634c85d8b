"""Pieces of the fault suite (tests/reliability/test_fault_suite.py): a private RabbitMQ node it may restart, the
steady SMTP load and the agent's replies that run through every fault, a readiness watch, and the counters.

Everything here records what happened on the wire (each SMTP reply, each API status, each /readyz answer) with
the time it happened, so that the test can check every outage against what the system said during it.
"""

import contextlib
import json
import os
import re
import shutil
import smtplib
import subprocess
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

import httpx

from tests.support.processes import free_port
from tests.support.waiting import wait_for_sync

RABBITMQ_SERVER = shutil.which("rabbitmq-server") or "/usr/sbin/rabbitmq-server"
RABBITMQCTL = shutil.which("rabbitmqctl") or "/usr/sbin/rabbitmqctl"


# --- a private RabbitMQ node --------------------------------------------------------------------------------------


def private_rabbit_unavailable() -> str | None:
    """Why a private node cannot be started here (None if it can): rabbitmq-server installed, and root (the server
    drops to the `rabbitmq` user, who must own the node's directories) or that user itself."""
    if not (Path(RABBITMQ_SERVER).exists() and Path(RABBITMQCTL).exists()):
        return "rabbitmq-server is not installed (scripts/deps.sh installs it)"
    if os.geteuid() != 0 and os.environ.get("USER") != "rabbitmq":
        return "starting a private RabbitMQ node needs root or the rabbitmq user"
    return None


class PrivateRabbit:
    """A RabbitMQ node of the test's own: its node name, AMQP and distribution ports, and storage in a temp dir.

    `stop()` then `start()` is a real broker restart on the same storage (durable queues and persistent messages
    recover from disk); the shared node other tests use is never touched."""

    def __init__(self) -> None:
        suffix = os.urandom(4).hex()
        self.node = f"mailstream-fault-{suffix}@localhost"
        self.port = free_port()
        self.dist_port = free_port()
        # Not under pytest's tmp dir: the server runs as the `rabbitmq` user, who cannot enter that one.
        self.base = Path(tempfile.mkdtemp(prefix=f"mailstream-rabbit-{suffix}-"))
        for sub in ("mnesia", "log"):
            (self.base / sub).mkdir()
        if os.geteuid() == 0:
            shutil.chown(self.base, "rabbitmq", "rabbitmq")
            for sub in ("mnesia", "log"):
                shutil.chown(self.base / sub, "rabbitmq", "rabbitmq")
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.base / "log"),
            "RABBITMQ_FEATURE_FLAGS_FILE": str(self.base / "feature_flags"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.base / "enabled_plugins"),
            "RABBITMQ_PID_FILE": str(self.base / "pid"),
        }

    def start(self, timeout: float = 120.0) -> "PrivateRabbit":
        log = (self.base / "server.out").open("ab")
        self.proc = subprocess.Popen([RABBITMQ_SERVER], env=self.env(), stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.starts += 1

        def accepting():
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"private rabbitmq-server exited:\n{self.logs()}")
            return self.ctl("-q", "await_startup", check=False, timeout=30).returncode == 0

        wait_for_sync(accepting, timeout=timeout, interval=0.5, what=f"RabbitMQ node {self.node}")
        return self

    def stop(self) -> None:
        """A clean shutdown of the node (what `systemctl restart rabbitmq-server` does first)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.ctl("stop", check=False, timeout=120)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)

    def ctl(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [RABBITMQCTL, "-n", self.node, *args], capture_output=True, check=check, timeout=timeout, env=self.env()
        )

    def queue_depths(self, leave_out: tuple[str, ...] = ()) -> dict[str, int]:
        out = self.ctl("-q", "list_queues", "-p", "/", "name", "messages", "--formatter", "json")
        return {q["name"]: int(q["messages"]) for q in json.loads(out.stdout or b"[]") if q["name"] not in leave_out}

    def logs(self, tail: int = 40) -> str:
        path = self.base / "server.out"
        return "\n".join(path.read_text(errors="replace").splitlines()[-tail:]) if path.exists() else ""


# --- the steady SMTP load -----------------------------------------------------------------------------------------


@dataclass
class Attempt:
    message_id: str
    outcome: str  # "250", "4xx", "5xx" or "no reply" (connection refused or dropped: taken or not, unknown)
    at: float
    detail: str = ""


class SteadyMail:
    """One client sending a new mail every `interval` seconds, each exactly once (no retry: a retry would blur
    "nothing that got 4xx is stored"). Distinct subjects, so each mail opens a conversation of its own."""

    def __init__(self, smtp_port: int, rcpt: str, interval: float, sender: str = "kana@example.net") -> None:
        self.smtp_port = smtp_port
        self.rcpt = rcpt
        self.interval = interval
        self.sender = sender
        self.lock = threading.Lock()
        self.attempts: list[Attempt] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="steady-mail")
        self._n = 0

    def __enter__(self) -> "SteadyMail":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(60)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            self.send_one(self.sender)
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - started)))

    def send_one(self, sender: str, subject: str | None = None) -> Attempt:
        with self.lock:
            self._n += 1
            n = self._n
        mail = EmailMessage()
        mail["From"] = sender
        mail["To"] = "support@acme.test"
        mail["Subject"] = subject or f"Fault drill order {n}"
        mail["Message-ID"] = make_msgid(idstring=f"fault{n}", domain="example.net")
        mail.set_content(f"Hello, order {n} has not arrived yet.")
        message_id = mail["Message-ID"].strip("<>")
        try:
            with smtplib.SMTP("127.0.0.1", self.smtp_port, timeout=20) as smtp:
                smtp.send_message(mail, from_addr=sender, to_addrs=[self.rcpt])
            attempt = Attempt(message_id, "250", time.monotonic())
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = exc.recipients[self.rcpt]
            attempt = Attempt(message_id, "4xx" if code < 500 else "5xx", time.monotonic(), f"{code} {text!r}")
        except smtplib.SMTPResponseException as exc:
            kind = "4xx" if exc.smtp_code < 500 else "5xx"
            attempt = Attempt(message_id, kind, time.monotonic(), f"{exc.smtp_code} {exc.smtp_error!r}")
        except (smtplib.SMTPServerDisconnected, ConnectionError, TimeoutError, OSError) as exc:
            attempt = Attempt(message_id, "no reply", time.monotonic(), repr(exc))
        with self.lock:
            self.attempts.append(attempt)
        return attempt

    def snapshot(self) -> list[Attempt]:
        with self.lock:
            return list(self.attempts)

    def count(self, outcome: str, since: float = 0.0) -> int:
        return sum(1 for a in self.snapshot() if a.outcome == outcome and a.at >= since)


# --- the agent ----------------------------------------------------------------------------------------------------

REPLY_TOKEN = re.compile(rb"fault-reply-(\d+)-end")


@dataclass
class ReplyRecord:
    token: int
    conversation_id: str
    message_id: str
    at: float


class Agent:
    """Replies to conversations as they arrive, one every `interval` seconds, each reply's text carrying a token
    the relay's copy is counted by. Only replies the API took (202) are counted as sent by the agent."""

    def __init__(self, gateway: str, api_key: str, stream_id: str, interval: float, skip_subject: str) -> None:
        self.client = httpx.Client(base_url=gateway, headers={"Authorization": f"Bearer {api_key}"}, timeout=10)
        self.stream_id = stream_id
        self.interval = interval
        self.skip_subject = skip_subject
        self.lock = threading.Lock()
        self.accepted: list[ReplyRecord] = []
        self.refused: Counter[str] = Counter()  # API status (or error type) of replies not taken
        self.not_taken: dict[int, str] = {}  # token -> the API status or error of a reply not answered 202
        self._replied: set[str] = set()
        self._token = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="agent")

    def __enter__(self) -> "Agent":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(60)
        self.client.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            with contextlib.suppress(httpx.HTTPError, ValueError):
                self._reply_to_a_new_conversation()
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - started)))

    def _reply_to_a_new_conversation(self) -> None:
        page = self.client.get("/v1/conversations", params={"stream_id": self.stream_id})
        if page.status_code != 200:
            self.refused[f"list {page.status_code}"] += 1
            return
        for conversation in page.json()["items"]:
            if conversation["id"] in self._replied or conversation["message_count"] < 1:
                continue
            if conversation["subject"].startswith(self.skip_subject):
                continue
            self.reply(conversation["id"])
            return

    def reply(self, conversation_id: str) -> ReplyRecord | None:
        with self.lock:
            self._token += 1
            token = self._token
        try:
            response = self.client.post(
                f"/v1/conversations/{conversation_id}/replies",
                json={"text": f"We are on it. fault-reply-{token}-end", "apply_template": False},
            )
        except httpx.HTTPError as exc:
            with self.lock:
                self.refused[type(exc).__name__] += 1
                self.not_taken[token] = type(exc).__name__
            return None
        if response.status_code != 202:
            with self.lock:
                self.refused[str(response.status_code)] += 1
                self.not_taken[token] = f"{response.status_code} {response.text[:200]}"
            return None
        record = ReplyRecord(token, conversation_id, response.json()["message_id"], time.monotonic())
        with self.lock:
            self._replied.add(conversation_id)
            self.accepted.append(record)
        return record

    def snapshot(self) -> list[ReplyRecord]:
        with self.lock:
            return list(self.accepted)


# --- readiness ----------------------------------------------------------------------------------------------------


@dataclass
class ReadinessWatch:
    """Polls every service's /readyz a few times a second; keeps (time, service, status) for each answer
    (status None: nothing answered, e.g. while the process was killed)."""

    ops_urls: dict[str, str]
    interval: float = 0.25
    samples: list[tuple[float, str, int | None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="readiness")

    def __enter__(self) -> "ReadinessWatch":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        with httpx.Client(timeout=5) as client:
            while not self._stop.is_set():
                for service, url in self.ops_urls.items():
                    try:
                        status: int | None = client.get(f"{url}/readyz").status_code
                    except httpx.HTTPError:
                        status = None
                    with self.lock:
                        self.samples.append((time.monotonic(), service, status))
                self._stop.wait(self.interval)

    def reported_not_ready(self, service: str, start: float, end: float | None = None) -> bool:
        """Whether `service` answered 503 at least once in [start, end]."""
        with self.lock:
            return any(
                s == service and status == 503 and t >= start and (end is None or t <= end)
                for t, s, status in self.samples
            )

    def last(self, service: str) -> int | None:
        with self.lock:
            return next((status for _, s, status in reversed(self.samples) if s == service), None)


# --- phases -------------------------------------------------------------------------------------------------------


@dataclass
class Phases:
    """Wall time per phase, for the report and docs/reliability.md."""

    times: dict[str, float] = field(default_factory=dict)

    @contextlib.contextmanager
    def timed(self, name: str):
        started = time.monotonic()
        try:
            yield
        finally:
            self.times[name] = round(time.monotonic() - started, 1)


def relay_tokens(datas: list[bytes]) -> Counter[int]:
    """How many copies of each agent reply (by its token) the relay accepted."""
    found: Counter[int] = Counter()
    for data in datas:
        for match in set(REPLY_TOKEN.findall(data)):
            found[int(match)] += 1
    return found
