"""kill -9 the database while mail flows in, restart it on the same storage, and count (issue 10, "Durability").

The whole system runs as real processes against a private SecantusDB (its own port and storage, journal synced on
commit, as scripts/deps.sh runs it) and a private RabbitMQ vhost. An SMTP client sends mails to a stream's
forwarding address and, like an MTA, retries a mail that got a 4xx reply or a dropped connection. Midway the
database process gets SIGKILL and is started again on the same port and storage path. Then:

- every mail that got 250 is in the inbox exactly once (by its Message-ID);
- every message the inbox had stored just before the kill is still there (an acknowledged write survived);
- (the database stays down until the inbox has failed a write and sent the broker message to a retry queue);
- nothing was dead-lettered and nothing is left queued.

The services write with the default durable write concern (w=majority, j=true) and acknowledge a broker message
only after the write it depends on; a service that acknowledged first, or a write the server lost, fails this.

Runs only where it can kill the database: the private SecantusDB it starts itself. Where MONGODB_URI names a MongoDB
(not SecantusDB) it is skipped, saying so: run the same drill against your own replica set by hand.
"""

import contextlib
import json
import shutil
import smtplib
import subprocess
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from email.message import EmailMessage
from email.utils import make_msgid
from urllib.parse import unquote, urlsplit

import pytest
from pymongo import MongoClient
from pymongo.errors import PyMongoError

from mailstream_inbox.api.app import BROADCAST_JOURNAL_QUEUE
from tests.e2e.conftest import System, running_system
from tests.e2e.scenarios_support import new_account, new_stream
from tests.support.backends import Backends
from tests.support.secantus import SecantusServer, secantusd_binary
from tests.support.waiting import wait_for_sync

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

MAILS = 80
KILL_AFTER_STORED = 10  # the kill lands while the inbox is storing and the rest is still being sent
SEND_WORKERS = 4
RETRY_LOGGED = '"message will be retried"'  # mailstream_common.broker's log line for a handler that failed
SEND_DEADLINE_S = 60.0  # per mail: how long the client keeps retrying 4xx, like an MTA's queue (much shorter)


def _is_secantus(uri: str) -> bool:
    with MongoClient(uri, serverSelectionTimeoutMS=5000) as client:
        return "secantusVersion" in client.admin.command("buildInfo")


@pytest.fixture(scope="module")
def crashable(backends: Backends, tmp_path_factory: pytest.TempPathFactory):
    """A private SecantusDB and the whole system pointed at it."""
    if not _is_secantus(backends.mongodb_uri):
        pytest.skip(
            "SKIPPED, NOT PASSED: the database-crash test kills a SecantusDB it starts itself; MONGODB_URI names "
            f"another server ({urlsplit(backends.mongodb_uri).netloc.split('@')[-1]}), which it will not kill. "
            "Run the same drill against your replica set by hand (docs/architecture.md, Database)."
        )
    binary = secantusd_binary()
    if binary is None:
        pytest.fail("secantusd-py not found: run scripts/deps.sh (it exports SECANTUSD_BIN) or set SECANTUSD_BIN")
    base = tmp_path_factory.mktemp("secantus-crash")
    server = SecantusServer(binary, base / "data", base / "secantusd.log").start()
    private = Backends(
        amqp_url=backends.amqp_url,
        mongodb_uri=server.uri,
        database=f"crash_{uuid.uuid4().hex[:8]}",
        description=f"private SecantusDB on {server.port}",
    )
    try:
        with running_system(private, tmp_path_factory, "crash") as system:
            yield system, server
    finally:
        server.stop()


class MtaLikeClient:
    """Sends each mail until it gets 250; retries 4xx and dropped connections; records what happened."""

    def __init__(self, port: int, rcpt: str) -> None:
        self.port = port
        self.rcpt = rcpt
        self.lock = threading.Lock()
        self.accepted: list[str] = []  # Message-IDs that got 250, in order
        self.temporary_failures = 0
        self.permanent: dict[str, str] = {}

    def send(self, mail: EmailMessage) -> None:
        deadline = time.monotonic() + SEND_DEADLINE_S
        pause = 0.2
        while True:
            try:
                with smtplib.SMTP("127.0.0.1", self.port, timeout=30) as smtp:
                    smtp.send_message(mail, from_addr="kana@example.net", to_addrs=[self.rcpt])
            except smtplib.SMTPRecipientsRefused as exc:
                code, text = exc.recipients[self.rcpt]
                if code >= 500:
                    return self._permanent(mail, f"{code} {text!r}")
            except smtplib.SMTPResponseException as exc:
                if exc.smtp_code >= 500:
                    return self._permanent(mail, f"{exc.smtp_code} {exc.smtp_error!r}")
            except (smtplib.SMTPServerDisconnected, ConnectionError, TimeoutError):
                pass  # no reply at all: the mail may or may not have been taken; resend it (dedup is by Message-ID)
            else:
                with self.lock:
                    self.accepted.append(mail["Message-ID"])
                return None
            with self.lock:
                self.temporary_failures += 1
            if time.monotonic() > deadline:
                return self._permanent(mail, f"still refused after {SEND_DEADLINE_S}s of retries")
            time.sleep(pause)
            pause = min(pause * 2, 2.0)

    def _permanent(self, mail: EmailMessage, why: str) -> None:
        with self.lock:
            self.permanent[mail["Message-ID"]] = why

    def accepted_count(self) -> int:
        with self.lock:
            return len(self.accepted)


def _mail(n: int) -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = "Kana Customer <kana@example.net>"
    mail["To"] = "support@acme.test"
    mail["Subject"] = f"Order {n} has not arrived"  # distinct subjects: one conversation each
    mail["Message-ID"] = make_msgid(idstring=f"crash{n}", domain="example.net")
    mail.set_content(f"Hello, order {n} has not arrived yet.")
    return mail


def _stored_message_ids(uri: str, database: str, stream_id: str) -> list[str]:
    with MongoClient(uri, serverSelectionTimeoutMS=5000) as client:
        cursor = client[database].messages.find(
            {"stream_id": stream_id, "direction": "inbound"}, {"message_id_header": 1}
        )
        return [_bare(doc["message_id_header"]) for doc in cursor]


def _dead_letters(uri: str, database: str) -> list[dict]:
    """What inbox's dead-letter keeper took off the `<queue>.dead` queues (they stay near empty while it runs, so an
    empty dead-letter queue alone no longer means that nothing died)."""
    with MongoClient(uri, serverSelectionTimeoutMS=5000) as client:
        return list(client[database].dead_letters.find({}, {"queue": 1, "reason": 1, "attempts": 1}))


def _queue_depths(amqp_url: str) -> dict[str, int] | None:
    """Messages (ready + unacked) per work queue of the system's vhost (retry and dead-letter queues included, the
    bounded journal nobody consumes left out); None where rabbitmqctl cannot tell."""
    if not shutil.which("rabbitmqctl") or urlsplit(amqp_url).hostname not in ("127.0.0.1", "localhost"):
        return None
    vhost = unquote(urlsplit(amqp_url).path[1:]) or "/"
    out = subprocess.run(
        ["rabbitmqctl", "-q", "list_queues", "-p", vhost, "name", "messages", "--formatter", "json"],
        capture_output=True,
        check=True,
        timeout=60,
    )
    queues = json.loads(out.stdout or b"[]")
    return {q["name"]: int(q["messages"]) for q in queues if q["name"] != BROADCAST_JOURNAL_QUEUE}


def _bare(message_id: str) -> str:
    return message_id.strip().strip("<>")


def test_every_mail_that_got_250_is_in_the_inbox_exactly_once_across_a_database_kill_9(crashable):
    system, server = crashable
    system: System
    database = system.env["MONGODB_DATABASE"]
    _, api = new_account(system, "Acme")
    stream = new_stream(api, "support@acme.test")
    client = MtaLikeClient(system.smtp_port, stream["forwarding_address"])
    mails = [_mail(n) for n in range(MAILS)]

    with ThreadPoolExecutor(SEND_WORKERS) as pool:
        # The first half is accepted faster than the inbox stores it; kill once the inbox is busy writing that
        # backlog, then send the second half while the database is down and while it recovers.
        sending = [pool.submit(client.send, mail) for mail in mails[: MAILS // 2]]
        # Kill at the first moment the inbox has stored some and is behind: a write is in flight or about to be.
        stored_before_kill = set(
            wait_for_sync(
                lambda: (
                    (ids := _stored_message_ids(server.uri, database, stream["id"]))
                    and KILL_AFTER_STORED <= len(ids) < client.accepted_count()
                    and ids
                ),
                timeout=60,
                what=f"{KILL_AFTER_STORED} mails stored and more accepted than stored",
            )
        )
        inbox_log = system.processes["inbox"].log_path
        retries_before = inbox_log.read_text(errors="replace").count(RETRY_LOGGED)
        server.kill9()
        accepted_at_kill = client.accepted_count()
        killed_at = time.monotonic()
        sending += [pool.submit(client.send, mail) for mail in mails[MAILS // 2 :]]
        # Stay down until the inbox has felt it (a write failed after the driver's 5 s server selection and the
        # broker message went to a retry queue), so the retry path runs too, not only the driver's reconnect.
        wait_for_sync(
            lambda: inbox_log.read_text(errors="replace").count(RETRY_LOGGED) > retries_before,
            timeout=60,
            interval=0.2,
            what="the inbox to fail a write against the dead database",
        )
        server.start()  # same port, same storage path: WiredTiger recovers from its journal
        down_for = time.monotonic() - killed_at
        for future in sending:
            future.result()

    assert not client.permanent, f"mails refused for good: {client.permanent}"
    accepted = {_bare(m) for m in client.accepted}
    assert len(accepted) == MAILS

    # Acknowledged writes survive the crash: what was stored before the kill is there right after the restart.
    after_restart = set(_stored_message_ids(server.uri, database, stream["id"]))
    assert stored_before_kill <= after_restart, f"lost in the crash: {sorted(stored_before_kill - after_restart)}"

    def everything_arrived_and_nothing_is_queued():
        stored = _stored_message_ids(server.uri, database, stream["id"])
        depths = _queue_depths(system.env["AMQP_URL"])
        settled = depths is None or not any(depths.values())
        return (stored, depths) if accepted <= set(stored) and settled else None

    try:
        stored, depths = wait_for_sync(
            everything_arrived_and_nothing_is_queued, timeout=90, interval=0.5, what="every accepted mail stored"
        )
    except AssertionError:
        with contextlib.suppress(PyMongoError):
            missing = accepted - set(_stored_message_ids(server.uri, database, stream["id"]))
            queued = {q: n for q, n in (_queue_depths(system.env["AMQP_URL"]) or {}).items() if n}
            raise AssertionError(f"{len(missing)} accepted mails not in the inbox; still queued: {queued}") from None
        raise

    duplicates = {m: stored.count(m) for m in set(stored) if stored.count(m) > 1}
    assert not duplicates, f"stored more than once: {duplicates}"
    assert not (dead := _dead_letters(server.uri, database)), f"dead-lettered: {dead}"
    assert set(stored) == accepted, f"stored but never accepted: {set(stored) - accepted}"
    with MongoClient(server.uri) as mongo:
        assert mongo[database].conversations.count_documents({"stream_id": stream["id"]}) == MAILS
    print(
        f"\ndatabase kill -9 after {accepted_at_kill}/{MAILS} mails accepted ({len(stored_before_kill)} stored); "
        f"down {down_for:.1f}s; {client.temporary_failures} temporary SMTP failures retried; "
        f"queues at the end: {sum((depths or {}).values())} messages"
    )
