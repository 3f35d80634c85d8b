"""History import throughput: mails per second for a generated mbox, `mailstream import` through ingest and inbox.

    eval "$(scripts/deps.sh)" && uv run --frozen python bench/import_mbox.py [--mails 10000] [--threads-share 0.3]

One run, on a private database and RabbitMQ vhost (both removed at the end):

1. Real processes: ingest (`python -m mailstream_ingest`) and inbox (`python -m mailstream_inbox`, API and worker);
   the account through the inbox CLI, topic and stream through the API.
2. A generated mbox: conversations as a mailbox holds them, in date order; each mail opens a new conversation
   (`--threads-share`) or answers the latest mail of one of the 50 most recent conversations (In-Reply-To and
   References), so the importer's wait-for-parent path is exercised.
3. Import: `mailstream import --stream ID FILE --quiet` as a subprocess; the clock stops when the database holds
   every message of the stream (counted with a bare `count_documents` every 100 ms). Then the same command again:
   it must queue nothing and change no count (idempotent by Message-ID), and its time is the re-scan rate.
4. Baseline in the same run: the message documents the import stored, inserted one by one into a scratch
   collection with the services' write concern (`majority`, journaled), the way the store consumer writes; and
   with `insert_many` (1,000 a batch), the database's bulk ceiling.

Prints a markdown table; label figures with the server they ran on (SecantusDB reports `secantusVersion`).
"""

import argparse
import contextlib
import json
import mailbox
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import httpx
from pymongo import MongoClient, WriteConcern

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest_smtp import vhost  # noqa: E402

from tests.support.processes import ServiceProcess, free_port  # noqa: E402

RECENT_CONVERSATIONS = 50


def generate_mbox(path: Path, mails: int, threads_share: float, seed: int = 7) -> int:
    """`mails` mails in date order; returns how many conversations they make."""
    rng = random.Random(seed)
    box = mailbox.mbox(path)
    box.lock()
    conversations: list[tuple[int, str, str]] = []  # (number, subject, latest Message-ID)
    when = datetime(2024, 1, 1, tzinfo=UTC)
    for index in range(mails):
        when += timedelta(minutes=rng.randint(1, 90))
        mail = EmailMessage()
        customer = f"customer{rng.randint(0, 3000)}@example.net"
        message_id = f"<import-{index}@history.example.net>"
        if not conversations or rng.random() < threads_share:
            number = len(conversations)
            subject = f"Order {number} question"
            conversations.append((number, subject, message_id))
        else:
            slot = rng.randrange(max(0, len(conversations) - RECENT_CONVERSATIONS), len(conversations))
            number, subject, parent = conversations[slot]
            mail["In-Reply-To"] = parent
            mail["References"] = parent
            subject = f"Re: {subject}"
            conversations[slot] = (number, conversations[slot][1], message_id)
        mail["From"] = f"Customer <{customer}>"
        mail["To"] = "history@acme.test"
        mail["Subject"] = subject
        mail["Date"] = when.strftime("%a, %d %b %Y %H:%M:%S +0000")
        mail["Message-ID"] = message_id
        mail.set_content(f"Hello,\n\nthis is mail {index} of the history.\n" + "Some words of text. " * 20)
        box.add(mail)
    box.flush()
    box.unlock()
    box.close()
    return len(conversations)


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mails", type=int, default=10_000)
    parser.add_argument("--threads-share", type=float, default=0.3, help="share of mails that open a conversation")
    args = parser.parse_args()
    uri = os.environ.get("MONGODB_URI", "mongodb://127.0.0.1:27017/")
    amqp = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
    database = f"mailstream_bench_import_{uuid.uuid4().hex[:8]}"
    client = MongoClient(uri, tz_aware=True, socketTimeoutMS=600_000)
    db = client[database]
    info = client.admin.command("buildInfo")
    server = (
        f"SecantusDB {info['secantusVersion']}"
        if info.get("secantusVersion")
        else f"MongoDB-wire server {info['version']} (not SecantusDB; check what it is before calling it MongoDB)"
    )
    print(f"server: {server}; database {database}; load average at start {load()}", flush=True)
    try:
        with contextlib.ExitStack() as stack:
            amqp_url = stack.enter_context(vhost(amqp))
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-import-")))
            env = {
                "MONGODB_URI": uri,
                "MONGODB_DATABASE": database,
                "AMQP_URL": amqp_url,
                "MAILSTREAM_INBOUND_DOMAIN": "in.mailstream.test",
                "DNS_NAMESERVERS": "127.0.0.1:1",
                "LOG_LEVEL": "WARNING",
            }
            inbox_port, ingest_port = free_port(), free_port()
            inbox = ServiceProcess(
                "inbox", "mailstream_inbox", {**env, "INBOX_HTTP_PORT": str(inbox_port)},
                f"http://127.0.0.1:{inbox_port}", work,
            ).start(timeout=300)  # fmt: skip
            stack.callback(inbox.stop)
            ingest = ServiceProcess(
                "ingest", "mailstream_ingest",
                {**env, "INGEST_SMTP_PORT": str(free_port()), "INGEST_OPS_PORT": str(ingest_port)},
                f"http://127.0.0.1:{ingest_port}", work,
            ).start(timeout=300)  # fmt: skip
            stack.callback(ingest.stop)
            cli = [str(Path(sys.executable).parent / "mailstream")]
            cli_env = {**os.environ, **env}
            created = json.loads(
                subprocess.run(
                    [*cli, "accounts", "create", "--name", "Bench import"],
                    env=cli_env,
                    capture_output=True,
                    check=True,
                    timeout=120,
                ).stdout
            )
            http = httpx.Client(
                base_url=f"http://127.0.0.1:{inbox_port}",
                headers={"Authorization": f"Bearer {created['api_key']}"},
                timeout=120,
            )
            stack.callback(http.close)
            topic = http.post("/v1/topics", json={"name": "History"}).raise_for_status().json()
            stream = (
                http.post(f"/v1/topics/{topic['id']}/streams", json={"address": "history@acme.test"})
                .raise_for_status()
                .json()
            )
            mbox = work / "history.mbox"
            started = time.perf_counter()
            conversations = generate_mbox(mbox, args.mails, args.threads_share)
            print(
                f"generated {args.mails} mails in {conversations} conversations, {mbox.stat().st_size / 1e6:.1f} MB,"
                f" in {time.perf_counter() - started:.1f} s",
                flush=True,
            )

            def stored() -> int:
                return db.messages.count_documents({"stream_id": stream["id"]})

            def run_import() -> tuple[dict, float, float]:
                """(summary, seconds until the command exited, seconds until every mail was stored); a progress
                line every 30 s, so that an interrupted run still shows its rate."""
                began = time.perf_counter()
                before = stored()
                command = subprocess.Popen(
                    [*cli, "import", "--stream", stream["id"], str(mbox), "--quiet"],
                    env=cli_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                )  # fmt: skip
                exited = None
                last_report = began
                while exited is None or stored() < args.mails:
                    time.sleep(0.1)
                    now = time.perf_counter()
                    if exited is None and command.poll() is not None:
                        exited = now - began
                        if command.returncode != 0:
                            raise RuntimeError(command.stderr.read().decode()[-2000:] if command.stderr else "")
                    if now - last_report >= 30:
                        count = stored()
                        rate = (count - before) / (now - began)
                        print(f"  {now - began:7.0f} s: {count} stored ({rate:.1f} mails/s)", flush=True)
                        last_report = now
                    if now - began > 3 * 3600:
                        raise RuntimeError(f"only {stored()} of {args.mails} stored after three hours")
                out = command.stdout.read() if command.stdout else b""
                return json.loads(out), exited, time.perf_counter() - began

            first, first_exit, first_total = run_import()
            assert first["queued"] == args.mails, first
            counts = (stored(), db.conversations.count_documents({"stream_id": stream["id"]}))
            second, second_exit, _ = run_import()
            assert second["queued"] == 0 and second["already_imported"] == args.mails, second
            assert (stored(), db.conversations.count_documents({"stream_id": stream["id"]})) == counts
            imported_flags = db.messages.count_documents({"stream_id": stream["id"], "imported": True})

            # Baseline: the same documents, written the way the store consumer writes (one by one, durable).
            docs = list(db.messages.find({"stream_id": stream["id"]}))
            scratch = db.get_collection("bench_scratch", write_concern=WriteConcern(w="majority", j=True))
            began = time.perf_counter()
            for doc in docs:
                scratch.insert_one(doc)
            one_by_one = time.perf_counter() - began
            scratch.drop()
            began = time.perf_counter()
            for start in range(0, len(docs), 1000):
                scratch.insert_many(docs[start : start + 1000], ordered=False)
            bulk = time.perf_counter() - began
            scratch.drop()

            n = args.mails
            print()
            print(f"{n} mails, {counts[1]} conversations ({conversations} in the mbox), {imported_flags} flagged")
            print(f"imported; load average at end {load()}")
            print()
            print("| measured | seconds | mails/s | vs. one-by-one insert |")
            print("| --- | --- | --- | --- |")
            rows = [
                ("import, until every mail is stored", first_total),
                ("import command alone (publishing)", first_exit),
                ("second import (queues nothing)", second_exit),
                ("baseline: insert_one of the stored documents", one_by_one),
                ("baseline: insert_many, 1,000 a batch", bulk),
            ]
            for label, seconds in rows:
                print(f"| {label} | {seconds:.1f} | {n / seconds:,.0f} | {one_by_one / seconds:.2f}x |")
    finally:
        client.drop_database(database)
        client.close()


if __name__ == "__main__":
    main()
