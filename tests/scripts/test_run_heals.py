"""The README's `scripts/run.sh`, for real: the whole system heals after kill -9 of the inbox (issue 12).

run.sh runs as a user would start it (its own process group, as a terminal runs it), on free ports, with its state
in a temporary directory, against the tests' RabbitMQ (a vhost of its own) and database. The inbox process gets
SIGKILL; the supervisor must say so, start it again, and the system must take and show mail again: the gateway's
/readyz answers 200 and a mail sent over SMTP afterwards is readable over the API. Ctrl-C then stops everything.
"""

import json
import os
import signal
import smtplib
import subprocess
import sys
from collections.abc import Iterator
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

import httpx
import pytest

from tests.scripts.supervision import ROOT, SupervisorRun, pid_gone
from tests.support.backends import Backends, isolated_vhost
from tests.support.processes import free_port
from tests.support.waiting import wait_for_sync

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

INBOUND_DOMAIN = "in.mailstream.test"


@pytest.fixture
def run_sh(backends: Backends, tmp_path: Path) -> Iterator[tuple[SupervisorRun, dict[str, str], dict[str, int]]]:
    ports = {
        name: free_port()
        for name in ("smtp", "relay", "inbox", "ingest", "domains", "automation", "sender", "webhooks")
    }
    with isolated_vhost(backends.amqp_url) as amqp_url:
        env = {
            **os.environ,
            "AMQP_URL": amqp_url,
            "MONGODB_URI": backends.mongodb_uri,
            "MONGODB_DATABASE": f"{backends.database}_run_sh",
            "MAILSTREAM_RUN_STATE": str(tmp_path / "state"),
            "MAILSTREAM_INBOUND_DOMAIN": INBOUND_DOMAIN,
            "INGEST_SMTP_PORT": str(ports["smtp"]),
            "INGEST_OPS_PORT": str(ports["ingest"]),
            "INBOX_HTTP_PORT": str(ports["inbox"]),
            "DOMAINS_HTTP_PORT": str(ports["domains"]),
            "AUTOMATION_HTTP_PORT": str(ports["automation"]),
            "SENDER_HTTP_PORT": str(ports["sender"]),
            "WEBHOOKS_OPS_PORT": str(ports["webhooks"]),
            "SENDER_SMTP_PORT": str(ports["relay"]),
            "DNS_NAMESERVERS": "127.0.0.1:1",  # nothing answers: a fast temperror instead of the machine's resolver
            "SHUTDOWN_GRACE_SECONDS": "5",
        }
        for inherited in ("SENDER_SMTP_HOST", "DOMAINS_URL", "AUTOMATION_URL", "SENDER_URL"):
            env.pop(inherited, None)  # run.sh derives them: the dev sink, and the ports above
        run = SupervisorRun(
            [str(ROOT / "scripts" / "run.sh")], tmp_path / "state" / "logs", tmp_path / "terminal.txt", env=env
        )
        try:
            yield run, env, ports
        finally:
            run.cleanup()


def gateway_ready(gateway: str) -> bool:
    try:
        return httpx.get(f"{gateway}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_run_sh_restarts_a_killed_inbox_and_the_system_takes_mail_again(run_sh):
    run, env, ports = run_sh
    gateway = f"http://127.0.0.1:{ports['inbox']}"
    run.wait_for_line("Mailstream is running.", timeout=240)
    assert f"HTTP API gateway   {gateway}" in run.output()  # the banner names the ports it was given

    account = subprocess.run(
        [str(Path(sys.executable).parent / "mailstream"), "accounts", "create", "--name", "Acme"],
        env=env,
        capture_output=True,
        check=True,
        timeout=60,
        text=True,
    )
    api = httpx.Client(
        base_url=gateway, headers={"Authorization": f"Bearer {json.loads(account.stdout)['api_key']}"}, timeout=10
    )
    topic = api.post("/v1/topics", json={"name": "Support"})
    assert topic.status_code == 201, topic.text
    stream = api.post(f"/v1/topics/{topic.json()['id']}/streams", json={"address": "support@acme.test"})
    assert stream.status_code == 201, stream.text
    forwarding_address = stream.json()["forwarding_address"]

    [inbox_pid] = run.pids("inbox")
    os.kill(inbox_pid, signal.SIGKILL)
    run.wait_for_line("run: inbox exited with status -9 (SIGKILL); restarting in ")
    run.wait_for_line("run: inbox is ready again (restart 1)", timeout=120)
    wait_for_sync(lambda: gateway_ready(gateway), timeout=30, what="the gateway's /readyz to answer 200")
    assert pid_gone(inbox_pid)
    assert len(run.pids("inbox")) == 2

    mail = EmailMessage()
    mail["From"] = "Kana Customer <kana@example.net>"
    mail["To"] = "support@acme.test"
    mail["Subject"] = "Still there after the crash?"
    mail["Message-ID"] = make_msgid(domain="example.net")
    mail.set_content("Order 1234 has not arrived.")
    with smtplib.SMTP("127.0.0.1", ports["smtp"], timeout=30) as smtp:
        assert smtp.send_message(mail, from_addr="kana@example.net", to_addrs=[forwarding_address]) == {}

    def stored_message():
        conversations = api.get("/v1/conversations").json()["items"]
        if not conversations:
            return None
        messages = api.get(f"/v1/conversations/{conversations[0]['id']}/messages").json()["items"]
        return messages[0] if messages else None

    message = wait_for_sync(stored_message, timeout=60, what="the mail to be readable over the API")
    assert message["message_id_header"] == mail["Message-ID"]
    assert "Order 1234" in message["text"]

    # The restart is in the supervisor's log and in the inbox's own log, as JSON lines.
    for log in ("run", "inbox"):
        restarts = [e for e in run.events(log) if e.get("event") == "restarting"]
        assert [(e["service"], e["status"], e["restart"]) for e in restarts] == [("inbox", -9, 1)]
    # Nothing else was restarted.
    assert [e["service"] for e in run.events() if e.get("event") == "restarting"] == ["inbox"]

    run.interrupt()
    assert run.wait(timeout=90) == 0
    output = run.output()
    for service in ("relay", "domains", "automation", "inbox", "sender", "ingest", "webhooks"):
        assert f"run: {service} stopped" in output
    assert all(pid_gone(pid) for name in ("inbox", "ingest", "relay") for pid in run.pids(name))
