"""Inbox API latency at 100,000 messages: list, deep page, open a conversation, search; API vs bare pymongo.

    eval "$(scripts/deps.sh)" && uv run python bench/inbox_api.py [--conversations 20000] [--messages-per 5]

One run, on a private database and RabbitMQ vhost (both removed at the end):

1. Accounts through the inbox CLI (`mailstream accounts create`), topic and stream through the real gateway's HTTP
   API (`python -m mailstream_inbox`, INBOX_ROLE=api).
2. Template conversations through the real store path: mails are built as raw RFC 5322 bytes, turned into
   `MailAnalysed` by ingest's own `parse` + `analyse`, published to the broker and stored by a real inbox worker
   process (INBOX_ROLE=worker): whatever documents the store consumer writes today, in every collection.
3. Volume for speed: every document the store consumer wrote for one template conversation is cloned (in every
   collection it wrote to) with its marker string, ids and datetimes substituted, and bulk-inserted. So the seed
   follows the consumer's schema as it changes, without hand-written document shapes. A few conversations per
   account stay as stored by the real path; the search row targets a clone and, if the clone is not found (a search
   design the substitution does not reach), a real one.
4. Measurement, interleaved per request (API, then the two baselines), over one keep-alive HTTP connection:
   - API: the gateway, with a pymongo command listener (`bench/mongo_capture.py`) that logs its read commands;
   - bare: the obvious pymongo query for the same page (filter on the account / conversation, sort, limit 51)
     through a synchronous client, for list / deep page / open; for search, the API's own captured commands;
   - replay: the read commands the gateway sent for that very request, replayed one after another (its database
     share; the gateway may run some concurrently, so this can exceed the API).

Prints markdown tables; label figures with the server they ran on (SecantusDB reports `secantusVersion`).
"""

import argparse
import asyncio
import contextlib
import copy
import hashlib
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import ClassVar

import httpx
from bson import ObjectId, json_util
from pymongo import DESCENDING, MongoClient
from pymongo.errors import BulkWriteError

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest_smtp import vhost  # noqa: E402

from mailstream_common.broker import Broker  # noqa: E402
from mailstream_common.contracts import MailReceived  # noqa: E402
from mailstream_common.contracts.mail import AuthenticationResult, Envelope, StreamTarget  # noqa: E402
from mailstream_common.pages import encode_cursor  # noqa: E402
from mailstream_ingest.analysis import analyse, parse  # noqa: E402
from tests.support.processes import ServiceProcess, free_port  # noqa: E402

BODY = (
    "Hello, I ordered a jacket last week and the tracking page still says the parcel is being prepared. "
    "Could you tell me when it will ship? I need it before my trip on Friday. Thanks a lot, "
)
HEX = re.compile(r"(?<![0-9a-f])(?:[0-9a-f]{64}|[0-9a-f]{32}|[0-9a-f]{24})(?![0-9a-f])")
HEXB = re.compile(rb"(?<![0-9a-f])(?:[0-9a-f]{64}|[0-9a-f]{32}|[0-9a-f]{24})(?![0-9a-f])")


def marker(account: int, kind: str, index: int) -> str:
    """A lower-case token unique to one conversation (survives search normalisation, never a hex run)."""
    return f"zq{account}{kind}{index}zq"


def raw_mail(mark: str, m: int, customer: str, to: str, when: datetime) -> bytes:
    first = f"<m0-{mark}@customer.example>"
    header = f"<m{m}-{mark}@customer.example>"
    thread = "" if m == 0 else f"In-Reply-To: {first}\r\nReferences: {first}\r\n"
    subject = f"Order {mark} question" if m == 0 else f"Re: Order {mark} question"
    text = f"{BODY}(message {m} of order {mark})"
    return (
        f"From: Customer {mark} <{customer}>\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: {header}\r\n{thread}"
        f"Date: {when.strftime('%a, %d %b %Y %H:%M:%S +0000')}\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/alternative; boundary="b1"\r\n\r\n'
        f'--b1\r\nContent-Type: text/plain; charset="utf-8"\r\n\r\n{text}\r\n'
        f'--b1\r\nContent-Type: text/html; charset="utf-8"\r\n\r\n<div><p>{text}</p><p>Best regards</p></div>\r\n'
        "--b1--\r\n"
    ).encode()


def analysed_event(raw: bytes, when: datetime, stream: dict, account_id: str, customer: str):
    """The event ingest publishes for this mail, made by ingest's own parse + analyse."""
    received = MailReceived(
        mail_id=uuid.uuid4().hex,
        received_at=when,
        envelope=Envelope(mail_from=customer, rcpt_to=[stream["forwarding_address"]]),
        targets=[
            StreamTarget(
                forwarding_address=stream["forwarding_address"],
                stream_id=stream["id"],
                account_id=account_id,
                stream_address=stream["address"],
            )
        ],
        raw=raw,
        raw_sha256=hashlib.sha256(raw).hexdigest(),
        size=len(raw),
    )
    auth = AuthenticationResult(spf="pass", dkim="pass", dmarc="pass", header="bench; spf=pass")
    return analyse(received, parse(received), auth).analysed


# --- cloning what the store consumer wrote ------------------------------------------------------------------------


def walk(value, visit):
    if isinstance(value, dict):
        return {k: walk(v, visit) for k, v in value.items()}
    if isinstance(value, list):
        return [walk(v, visit) for v in value]
    return visit(value)


def contains(value, needles: set[str]) -> bool:
    found = False

    def visit(v):
        nonlocal found
        if (isinstance(v, str) and any(n in v for n in needles)) or (
            isinstance(v, bytes) and any(n.encode() in v for n in needles)
        ):
            found = True
        return v

    walk(value, visit)
    return found


class Cloner:
    """Copies of one template conversation's documents (all collections) with a new marker, new ids, shifted times.

    Every 24/32/64-hex token that is not one of the account's pre-existing ids (account, stream, topic, key...) is
    an id of the conversation's own documents (message, conversation, blob, event, lookup keys): mapped to a fresh
    one of the same length, consistently within a copy. ObjectIds likewise."""

    def __init__(self, group: dict[str, list[dict]], template_marker: str, keep: set[str]) -> None:
        self.group, self.marker, self.keep = group, template_marker, keep

    def copy(self, new_marker: str, shift: timedelta) -> dict[str, list[dict]]:
        ids: dict[str, str] = {}
        oids: dict[ObjectId, ObjectId] = {}

        def new_id(match) -> str:
            token = match.group(0)
            if token in self.keep:
                return token
            if token not in ids:
                ids[token] = (uuid.uuid4().hex + uuid.uuid4().hex)[: len(token)]
            return ids[token]

        def new_id_bytes(match) -> bytes:
            return new_id(type("M", (), {"group": lambda self, _: match.group(0).decode()})()).encode()

        def visit(v):
            if isinstance(v, str):
                return HEX.sub(new_id, v.replace(self.marker, new_marker))
            if isinstance(v, bytes):
                return HEXB.sub(new_id_bytes, v.replace(self.marker.encode(), new_marker.encode()))
            if isinstance(v, datetime):
                return v + shift
            if isinstance(v, ObjectId):
                return oids.setdefault(v, ObjectId())
            return v

        return {name: [walk(d, visit) for d in docs] for name, docs in self.group.items()}


def all_docs(db) -> dict[str, list[dict]]:
    return {n: list(db[n].find({})) for n in db.list_collection_names() if not n.startswith("system.")}


def groups_by_marker(before: dict[str, set], after: dict[str, list[dict]], markers: list[str]) -> dict[str, dict]:
    """The new documents of each template conversation: those holding its marker, then those naming their ids."""
    new = {n: [d for d in docs if repr(d["_id"]) not in before.get(n, set())] for n, docs in after.items()}
    groups: dict[str, dict[str, list[dict]]] = {m: {} for m in markers}
    placed: set[tuple[str, str]] = set()
    for m in markers:
        for name, docs in new.items():
            for d in docs:
                if contains(d, {m}):
                    groups[m].setdefault(name, []).append(d)
                    placed.add((name, repr(d["_id"])))
    for m in markers:
        own_ids = {str(d["_id"]) for docs in groups[m].values() for d in docs if isinstance(d["_id"], (str, ObjectId))}
        for name, docs in new.items():
            for d in docs:
                if (name, repr(d["_id"])) not in placed and contains(d, own_ids):
                    groups[m].setdefault(name, []).append(d)
                    placed.add((name, repr(d["_id"])))
    return groups


def keep_tokens(docs: dict[str, list[dict]]) -> set[str]:
    keep: set[str] = set()

    def visit(v):
        if isinstance(v, str):
            keep.update(HEX.findall(v))
        return v

    for coll in docs.values():
        for d in coll:
            walk(d, visit)
    return keep


class BulkWriter:
    def __init__(self, db, every: int = 2000) -> None:
        self.db, self.every, self.pending, self.errors, self.written = db, every, {}, 0, 0

    def add(self, docs: dict[str, list[dict]]) -> None:
        for name, batch in docs.items():
            self.pending.setdefault(name, []).extend(batch)
            if len(self.pending[name]) >= self.every:
                self.flush(name)

    def flush(self, name: str | None = None) -> None:
        for n in [name] if name else list(self.pending):
            batch, self.pending[n] = self.pending.get(n, []), []
            if not batch:
                continue
            try:
                self.db[n].insert_many(batch, ordered=False)
                self.written += len(batch)
            except BulkWriteError as exc:
                self.errors += len(exc.details.get("writeErrors", []))
                self.written += exc.details.get("nInserted", 0)


# --- measuring ----------------------------------------------------------------------------------------------------


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1000


def timed(call) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


class Replay:
    """The read commands the gateway logged since the last call, replayed in order through `client`."""

    STRIP: ClassVar[set[str]] = {
        "lsid",
        "$clusterTime",
        "$db",
        "$readPreference",
        "txnNumber",
        "signature",
        "apiVersion",
    }

    def __init__(self, path: Path, client: MongoClient) -> None:
        self.path, self.client, self.offset = path, client, path.stat().st_size if path.exists() else 0

    def take(self) -> list[tuple[str, dict]]:
        with self.path.open() as f:
            f.seek(self.offset)
            lines = f.read().splitlines()
            self.offset = f.tell()
        out = []
        for line in lines:
            record = json_util.loads(line)
            if record["command"].get("getMore"):
                continue  # replayed finds return their first batch; a getMore needs the live cursor
            command = {k: v for k, v in record["command"].items() if k not in self.STRIP}
            out.append((record["db"], command))
        return out

    def run(self, commands: list[tuple[str, dict]]) -> None:
        for db, command in commands:
            self.client[db].command(copy.deepcopy(command))


def load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conversations", type=int, default=20_000, help="on the measured account")
    parser.add_argument("--messages-per", type=int, default=5)
    parser.add_argument("--noise-accounts", type=int, default=2)
    parser.add_argument("--noise-conversations", type=int, default=2_000)
    parser.add_argument("--real", type=int, default=3, help="conversations per account through the real store path")
    parser.add_argument("--requests", type=int, default=100, help="timed opens of a conversation (after 3 warm-ups)")
    parser.add_argument("--scan-requests", type=int, default=15, help="timed list / deep page / search requests")
    parser.add_argument("--deep-offset", type=int, default=10_000)
    parser.add_argument("--only", choices=["list", "deep", "open", "search"], action="append")
    args = parser.parse_args()
    uri = os.environ.get("MONGODB_URI", "mongodb://127.0.0.1:27017/")
    amqp = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
    database = f"mailstream_bench_inbox_{uuid.uuid4().hex[:8]}"
    client = MongoClient(uri, tz_aware=True, socketTimeoutMS=600_000)
    db = client[database]
    info = client.admin.command("buildInfo")
    server = (
        f"SecantusDB {info['secantusVersion']}"
        if info.get("secantusVersion")
        else f"MongoDB-wire server {info['version']} (not SecantusDB; check what it is before calling it MongoDB)"
    )
    print(f"server: {server}; database {database}; load average at start {load()}", flush=True)
    began = time.perf_counter()
    try:
        with contextlib.ExitStack() as stack:
            amqp_url = stack.enter_context(vhost(amqp))
            logs = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-inbox-")))
            capture = logs / "commands.jsonl"
            capture.touch()
            env = {
                "MONGODB_URI": uri,
                "MONGODB_DATABASE": database,
                "AMQP_URL": amqp_url,
                "MAILSTREAM_INBOUND_DOMAIN": "in.mailstream.test",
                "LOG_LEVEL": "WARNING",
            }
            api_port, worker_port = free_port(), free_port()
            gateway = ServiceProcess(
                "gateway", "mailstream_inbox", {**env, "INBOX_ROLE": "api", "INBOX_HTTP_PORT": str(api_port)},
                f"http://127.0.0.1:{api_port}", logs,
            )  # fmt: skip
            gateway.spawn = lambda: _spawn_captured(gateway, capture)  # type: ignore[method-assign]
            gateway.start(timeout=300)
            stack.callback(gateway.stop)
            worker = ServiceProcess(
                "worker", "mailstream_inbox", {**env, "INBOX_ROLE": "worker", "INBOX_HTTP_PORT": str(worker_port)},
                f"http://127.0.0.1:{worker_port}", logs,
            ).start(timeout=300)  # fmt: skip
            stack.callback(worker.stop)
            base = f"http://127.0.0.1:{api_port}"

            # 1. accounts (CLI), topic and stream (HTTP)
            accounts = []
            for a in range(1 + args.noise_accounts):
                cli = subprocess.run(
                    [str(Path(sys.executable).parent / "mailstream"), "accounts", "create", "--name", f"Bench {a}"],
                    env={**os.environ, **env}, capture_output=True, check=True, timeout=120,
                )  # fmt: skip
                created = json.loads(cli.stdout)
                http = httpx.Client(
                    base_url=base, headers={"Authorization": f"Bearer {created['api_key']}"}, timeout=600
                )
                stack.callback(http.close)
                topic = http.post("/v1/topics", json={"name": "Bench"}).raise_for_status().json()
                stream = (
                    http.post(f"/v1/topics/{topic['id']}/streams", json={"address": f"support{a}@acme.test"})
                    .raise_for_status()
                    .json()
                )
                accounts.append({"id": created["account_id"], "http": http, "stream": stream})
            before = all_docs(db)
            before_ids = {n: {repr(d["_id"]) for d in docs} for n, docs in before.items()}
            keep = keep_tokens(before)

            # 2. template conversations through the real store consumer
            start = datetime.now(UTC) - timedelta(days=90)
            real_markers = {a: [marker(a, "r", k) for k in range(args.real)] for a in range(len(accounts))}

            async def publish_real() -> None:
                broker = Broker(amqp_url, service="bench")
                await broker.connect()
                try:
                    for m in range(args.messages_per):  # message m of every conversation, then wait: replies thread
                        for a, acct in enumerate(accounts):
                            for k, mark in enumerate(real_markers[a]):
                                when = start + timedelta(seconds=k * 200 + m * 30)
                                customer = f"customer-{mark}@example.net"
                                raw = raw_mail(mark, m, customer, acct["stream"]["address"], when)
                                await broker.publish(analysed_event(raw, when, acct["stream"], acct["id"], customer))
                        expected = len(accounts) * args.real * (m + 1)
                        deadline = time.monotonic() + 300
                        while sum(_message_count(acct["http"]) for acct in accounts) < expected:
                            if time.monotonic() > deadline:
                                raise RuntimeError(f"the store consumer did not store {expected} messages in 300 s")
                            await asyncio.sleep(0.2)
                finally:
                    await broker.close()

            t0 = time.perf_counter()
            asyncio.run(publish_real())
            worker.stop()
            real_seconds = time.perf_counter() - t0
            after = all_docs(db)
            markers = [m for ms in real_markers.values() for m in ms]
            groups = groups_by_marker(before_ids, after, markers)
            shape = {n: len(d) for n, d in groups[markers[0]].items()}
            print(
                f"real store path: {len(markers)} conversations / {len(markers) * args.messages_per} mails in "
                f"{real_seconds:.1f}s; one conversation's documents per collection: {shape}",
                flush=True,
            )

            # 3. clones
            t0 = time.perf_counter()
            writer = BulkWriter(db)
            for a in range(len(accounts)):
                template = real_markers[a][0]
                cloner = Cloner(groups[template], template, keep)
                total = args.conversations if a == 0 else args.noise_conversations
                for i in range(max(0, total - args.real)):
                    shift = timedelta(seconds=(args.real + i) * 200)
                    writer.add(cloner.copy(marker(a, "c", i), shift))
            writer.flush()
            counts = {n: db[n].estimated_document_count() for n in ("messages", "conversations") if n in after}
            print(
                f"cloned {writer.written} documents ({writer.errors} insert errors) in {time.perf_counter() - t0:.0f}s;"
                f" now {counts}; load average {load()}",
                flush=True,
            )

            # 4. measure
            main_account = accounts[0]
            http = main_account["http"]
            account_id = main_account["id"]
            sync = MongoClient(uri, tz_aware=True, socketTimeoutMS=600_000)
            stack.callback(sync.close)
            bdb = sync[database]
            replay = Replay(capture, sync)

            def api(path, params=None):
                response = http.get(path, params=params)
                assert response.status_code == 200, response.text
                return response.json()

            first = api("/v1/conversations", {"limit": 50})
            assert len(first["items"]) == 50, first
            sort = [("last_message_at", DESCENDING), ("_id", DESCENDING)]
            t0 = time.perf_counter()
            ordered = [d["_id"] for d in bdb.conversations.find({"account_id": account_id}, {"_id": 1}).sort(sort)]
            ids = ordered[:]
            walked = min(args.deep_offset, len(ordered))
            deep_last = {"id": ordered[walked - 1]}
            # The deep page's cursor: the one the API would hand out after `walked` items, if its keyset is
            # (last_message_at, _id) as today; checked against the order above, else found by paging the API.
            at = bdb.conversations.find_one({"_id": deep_last["id"]}, {"last_message_at": 1})["last_message_at"]
            deep_cursor = encode_cursor({"last_message_at": at, "_id": deep_last["id"]})
            probe = http.get("/v1/conversations", params={"limit": 1, "cursor": deep_cursor})
            if probe.status_code != 200 or [i["id"] for i in probe.json()["items"]] != ordered[walked : walked + 1]:
                print("the cursor format changed: finding the deep page by paging the API (200 per page)", flush=True)
                cursor, walked = None, 0
                while walked < args.deep_offset:
                    limit = min(200, args.deep_offset - walked)
                    page = api("/v1/conversations", {"limit": limit, **({"cursor": cursor} if cursor else {})})
                    walked += len(page["items"])
                    cursor, deep_last = page["next_cursor"], page["items"][-1]
                    if cursor is None:
                        break
                deep_cursor = cursor
            print(f"deep cursor after {walked} conversations found in {time.perf_counter() - t0:.0f}s", flush=True)
            deep_at = bdb.conversations.find_one({"_id": deep_last["id"]}, {"last_message_at": 1})["last_message_at"]
            deep_filter = {
                "account_id": account_id,
                "$or": [
                    {"last_message_at": {"$lt": deep_at}},
                    {"last_message_at": deep_at, "_id": {"$lt": deep_last["id"]}},
                ],
            }
            term = f"customer-{marker(0, 'c', (args.conversations - args.real) * 2 // 3)}@example"
            found = api("/v1/conversations", {"q": term, "limit": 50})["items"]
            if len(found) != 1:
                print(f"search for a cloned conversation found {len(found)}: searching a real one instead", flush=True)
                term = f"customer-{real_markers[0][1]}@example"
                assert len(api("/v1/conversations", {"q": term, "limit": 50})["items"]) == 1

            picked: dict[str, str] = {}

            def open_api():
                picked["id"] = random.choice(ids)
                return api(f"/v1/conversations/{picked['id']}/messages", {"limit": 50})

            scans = args.scan_requests
            rows = [
                (
                    "list",
                    "list, first page",
                    lambda: api("/v1/conversations", {"limit": 50}),
                    lambda: list(bdb.conversations.find({"account_id": account_id}).sort(sort).limit(51)),
                ),
                (
                    "deep",
                    f"list, deep page (after {walked})",
                    lambda: api("/v1/conversations", {"limit": 50, "cursor": deep_cursor}),
                    lambda: list(bdb.conversations.find(deep_filter).sort(sort).limit(51)),
                ),
                (
                    "open",
                    f"open a conversation (its {args.messages_per} messages)",
                    open_api,
                    lambda: list(
                        bdb.messages.find({"conversation_id": picked["id"], "account_id": account_id})
                        .sort([("created_at", 1), ("_id", 1)])
                        .limit(51)
                    ),
                ),
                (
                    "search",
                    "search q=<customer address>",
                    lambda: api("/v1/conversations", {"q": term, "limit": 50}),
                    None,
                ),
            ]
            if args.only:
                rows = [r for r in rows if r[0] in args.only]
            print(f"\n{server}; {args.conversations} conversations / {args.conversations * args.messages_per} messages "
                  f"on the account, {len(accounts) - 1} other accounts of {args.noise_conversations}; "
                  f"timed requests per row: {args.requests} (open), {args.scan_requests} (the others; their p99 is the max); "
                  "interleaved API / bare / replay\n")  # fmt: skip
            print(
                "| operation | n | API p50 ms | API p99 ms | bare p50 ms | bare p99 ms | API/bare p99 | "
                "API's queries replayed p50 / p99 ms (count) | load avg |"
            )
            print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
            for key, name, api_call, bare_call in rows:
                load_before = load()
                a, b, r, nq = [], [], [], []
                count = args.requests if key == "open" else scans
                for n in range(count + 3):
                    replay.take()
                    ta = timed(api_call)
                    commands = replay.take()
                    tr = timed(lambda: replay.run(commands))  # noqa: B023
                    tb = timed(bare_call) if bare_call else tr
                    if n >= 3:
                        a.append(ta), b.append(tb), r.append(tr), nq.append(len(commands))
                bare_label = "" if bare_call else " (= replay)"
                print(
                    f"| {name} | {count} | {pct(a, 0.5):.1f} | {pct(a, 0.99):.1f} | {pct(b, 0.5):.1f}{bare_label} | "
                    f"{pct(b, 0.99):.1f} | {pct(a, 0.99) / pct(b, 0.99):.2f}x | {pct(r, 0.5):.1f} / {pct(r, 0.99):.1f} "
                    f"({statistics.median(nq):.0f}) | {load_before} -> {load()} |",
                    flush=True,
                )
    finally:
        client.drop_database(database)
        client.close()
        print(f"\ntotal {time.perf_counter() - began:.0f}s; database dropped, vhost deleted", flush=True)


def _message_count(http: httpx.Client) -> int:
    items = http.get("/v1/conversations", params={"limit": 50}).json()["items"]
    return sum(item.get("message_count", 0) for item in items)


def _spawn_captured(process: ServiceProcess, capture: Path) -> ServiceProcess:
    process.stop_requested = False
    log_file = process.log_path.open("ab")
    process.proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve().parent / "mongo_capture.py"), str(capture), process.module],
        env={**os.environ, **process.env},
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )
    log_file.close()
    return process


if __name__ == "__main__":
    main()
