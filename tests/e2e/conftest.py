"""The whole system as real processes: five services, the local RabbitMQ and SecantusDB, and Postfix's smtp-sink
as the outbound relay. Module-scoped: starting it costs a few seconds."""

import contextlib
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest

from tests.support.backends import Backends, isolated_vhost
from tests.support.processes import ServiceProcess, free_port
from tests.support.service_tokens import service_env
from tests.support.waiting import wait_for_sync

_system_counter = itertools.count()
INBOUND_DOMAIN = "in.mailstream.test"

SMTP_SINK = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"


@dataclass
class RelaySink:
    """Postfix's smtp-sink writing each mail it accepts to a file."""

    port: int
    directory: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> "RelaySink":
        self.directory.mkdir(parents=True, exist_ok=True)
        self.directory.chmod(0o777)  # smtp-sink drops to 'nobody' before writing
        self.proc = subprocess.Popen(
            [SMTP_SINK, "-u", "nobody", "-d", f"{self.directory}/%H%M%S.", f"127.0.0.1:{self.port}", "64"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)

    def messages(self) -> list[EmailMessage]:
        """The mails received so far (complete once the sender saw the relay's 250 for them).

        smtp-sink's dump starts with its own X-Client-Addr/X-Helo-Args/X-Mail-Args/X-Rcpt-Args lines and a Received
        line, then the message as sent."""
        return [
            message_from_bytes(path.read_bytes(), policy=policy.default) for path in sorted(self.directory.iterdir())
        ]


@dataclass
class System:
    gateway: str
    smtp_port: int
    relay: RelaySink
    env: dict[str, str]
    processes: dict[str, ServiceProcess] = field(default_factory=dict)

    def cli(self, *args: str) -> dict:
        out = subprocess.run(
            [str(Path(sys.executable).parent / "mailstream"), *args],
            env={**os.environ, **self.env},
            capture_output=True,
            check=True,
            timeout=60,
        )
        return json.loads(out.stdout)

    def client(self, api_key: str) -> httpx.Client:
        return httpx.Client(base_url=self.gateway, headers={"Authorization": f"Bearer {api_key}"}, timeout=10)

    def logs(self) -> str:
        return "\n".join(f"--- {name}\n{p.logs(40)}" for name, p in self.processes.items())


@contextlib.contextmanager
def running_system(
    backends: Backends, tmp_path_factory: pytest.TempPathFactory, name: str, extra_env: dict[str, str] | None = None
) -> Iterator[System]:
    """The five services as real processes (plus smtp-sink as relay), `extra_env` over the defaults.

    Each system gets its own vhost and database, so nothing queued or stored by another module's processes
    reaches this one."""
    with isolated_vhost(backends.amqp_url) as amqp_url:
        yield from _run_system(amqp_url, backends, tmp_path_factory, name, extra_env or {})


@pytest.fixture(scope="module")
def system(backends: Backends, tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    with running_system(backends, tmp_path_factory, f"m{next(_system_counter)}") as running:
        yield running


def _run_system(
    amqp_url: str, backends: Backends, tmp_path_factory: pytest.TempPathFactory, name: str, extra_env: dict[str, str]
) -> Iterator[System]:
    log_dir = tmp_path_factory.mktemp(f"logs-{name}")
    # Not under pytest's tmp dir: smtp-sink writes as 'nobody', who cannot enter pytest's private base folder.
    relay_dir = Path(tempfile.mkdtemp(prefix=f"mailstream-relay-{name}-"))
    relay = RelaySink(free_port(), relay_dir).start()
    ports = {key: free_port() for key in ("smtp", "ingest", "inbox", "domains", "automation", "sender")}
    env = {
        "AMQP_URL": amqp_url,
        "MONGODB_URI": backends.mongodb_uri,
        "MONGODB_DATABASE": f"{backends.database}_e2e_{name}",
        **service_env(),
        "DOMAINS_KEY_ENCRYPTION_KEY": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
        "MAILSTREAM_INBOUND_DOMAIN": INBOUND_DOMAIN,
        "INGEST_SMTP_PORT": str(ports["smtp"]),
        "INGEST_OPS_PORT": str(ports["ingest"]),
        "INBOX_HTTP_PORT": str(ports["inbox"]),
        "DOMAINS_HTTP_PORT": str(ports["domains"]),
        "AUTOMATION_HTTP_PORT": str(ports["automation"]),
        "SENDER_HTTP_PORT": str(ports["sender"]),
        "DOMAINS_URL": f"http://127.0.0.1:{ports['domains']}",
        "AUTOMATION_URL": f"http://127.0.0.1:{ports['automation']}",
        "SENDER_URL": f"http://127.0.0.1:{ports['sender']}",
        "SENDER_SMTP_HOST": "127.0.0.1",
        "SENDER_SMTP_PORT": str(relay.port),
        "DNS_NAMESERVERS": "127.0.0.1:1",  # nothing answers unless a module brings its DNS server: fast temperror
        "SHUTDOWN_GRACE_SECONDS": "5",
        **extra_env,
    }
    ops = {
        service: f"http://127.0.0.1:{ports[service]}"
        for service in ("domains", "automation", "inbox", "sender", "ingest")
    }
    system = System(ops["inbox"], ports["smtp"], relay, env)
    try:
        for service, url in ops.items():  # side by side: start-up is mostly imports
            system.processes[service] = ServiceProcess(service, f"mailstream_{service}", env, url, log_dir).spawn()
        for process in system.processes.values():
            process.wait_ready(timeout=120)
        yield system
    finally:
        for process in system.processes.values():
            process.request_stop()
        for process in system.processes.values():
            with contextlib.suppress(Exception):
                process.stop()
        relay.stop()
        shutil.rmtree(relay_dir, ignore_errors=True)


def wait_for_json(client: httpx.Client, path: str, predicate, *, timeout: float = 20.0, what: str = ""):
    """GET `path` until `predicate(json)` is truthy; return the JSON."""

    def probe():
        response = client.get(path)
        if response.status_code == 200 and predicate(body := response.json()):
            return body
        return None

    return wait_for_sync(probe, timeout=timeout, what=what or path)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """On a failure, attach the tail of every service's log to the report: the why is usually there."""
    report = yield
    running = item.funcargs.get("system") if hasattr(item, "funcargs") else None
    if report.failed and isinstance(running, System):
        report.sections.append(("service logs", running.logs()))
    return report
