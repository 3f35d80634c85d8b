"""Latency of the inbox API's conversation reads vs a bare pymongo `find()` of the same documents.

One run, all on this machine: seed one account with CONVERSATIONS conversations of MESSAGES_PER messages each
(plus NOISE other accounts of the same shape), start the real gateway (`python -m mailstream_inbox`, INBOX_ROLE=api),
and time, sequentially over one keep-alive HTTP connection, REQUESTS calls of each:

- list, first page     GET /v1/conversations?limit=50
- list, deep page      GET /v1/conversations?limit=50&cursor=<after the DEEP_OFFSET-th conversation>
- open conversation    GET /v1/conversations/{id}/messages?limit=50 (a random conversation each time)
- search               GET /v1/conversations?q=<a customer address that matches one conversation>&limit=50

against the same query (filter, sort, limit) through a synchronous pymongo client (the baseline: what the database
costs; the difference is the API's own overhead: auth lookup, FastAPI validation and serialisation, HTTP).

    eval "$(scripts/deps.sh)" && uv run python bench/inbox_api.py [--conversations 20000] [--messages-per 5]

Documents are written straight to the collections (with the gateway's indexes) rather than through the store
consumer, which would take far longer than the measurement itself; their shape is the consumer's.
"""

import argparse
import asyncio
import contextlib
import os
import random
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from pymongo import DESCENDING, MongoClient

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest_smtp import vhost, wait_ready  # noqa: E402

from mailstream_common import mongo  # noqa: E402
from mailstream_common.pages import encode_cursor  # noqa: E402
from mailstream_inbox.indexes import collect_indexes  # noqa: E402
from mailstream_inbox.repositories import accounts as accounts_repo  # noqa: E402
from mailstream_inbox.repositories import api_keys as api_keys_repo  # noqa: E402
from mailstream_inbox.repositories import conversation_search as search_repo  # noqa: E402
from mailstream_inbox.repositories import conversations as conversations_repo  # noqa: E402
from mailstream_inbox.repositories import messages as messages_repo  # noqa: E402
from tests.support.processes import free_port  # noqa: E402

BODY = (
    "Hello, I ordered a jacket last week and the tracking page still says the parcel is being prepared. "
    "Could you tell me when it will ship? I need it before my trip on Friday. Thanks a lot, "
)
HTML = "<div><p>{}</p><p>Best regards</p><img src='cid:logo'></div>"


async def create_account_and_key(uri: str, database: str, name: str) -> tuple[str, str]:
    client = mongo.create_client(uri, app_name="bench")
    db = client[database]
    await mongo.ensure_indexes(db, collect_indexes())
    account = await accounts_repo.create_account(db, name)
    _doc, key = await api_keys_repo.create_api_key(db, account["_id"], "agent", "bench agent", created_by="bench")
    await client.close()
    return account["_id"], key


def seed_account(db, account_id: str, conversations: int, per: int, label: str) -> list[str]:
    """Insert `conversations` conversations with `per` messages each; returns their ids."""
    topic_id, stream_id = uuid.uuid4().hex, uuid.uuid4().hex
    start = datetime.now(UTC) - timedelta(days=60)
    ids: list[str] = []
    conv_batch: list[dict] = []
    msg_batch: list[dict] = []
    search_batch: list[dict] = []
    for i in range(conversations):
        first_header = f"<{uuid.uuid4().hex}@example.net>"
        cid = conversations_repo.conversation_id_for(stream_id, first_header)
        ids.append(cid)
        customer = {"name": f"Customer {label}{i}", "address": f"customer{label}{i}@example.net"}
        subject = f"Order {label}{i} question"
        first = start + timedelta(seconds=i * 200)
        thread_keys: list[str] = []
        message_ids: list[str] = []
        for m in range(per):
            header = first_header if m == 0 else f"<{uuid.uuid4().hex}@example.net>"
            mid = messages_repo.message_id_for(stream_id, header)
            thread_keys.append(header)
            message_ids.append(mid)
            inbound = m % 2 == 0
            text = f"{BODY}(message {m} of order {label}{i})"
            msg_batch.append(
                {
                    "_id": mid,
                    "account_id": account_id,
                    "conversation_id": cid,
                    "stream_id": stream_id,
                    "direction": "inbound" if inbound else "outbound",
                    "from": customer if inbound else {"name": "Acme", "address": "support@acme.test"},
                    "customer": customer,
                    "to": [{"name": "", "address": "support@acme.test"}],
                    "cc": [],
                    "subject": subject if m == 0 else f"Re: {subject}",
                    "text": text,
                    "html": HTML.format(text),
                    "remote_images_blocked": 0,
                    "headers": [{"name": "Subject", "value": subject}, {"name": "Message-ID", "value": header}],
                    "attachments": [],
                    "message_id_header": header,
                    "in_reply_to": thread_keys[-2:-1],
                    "references": thread_keys[:-1],
                    "authentication": {"spf": "pass", "dkim": "pass", "dmarc": "pass", "header": ""},
                    "forwarded": None,
                    "delivery": None if inbound else {"status": "sent", "detail": "250 ok", "version": 1},
                    "raw_blob_id": None,
                    "dedup_key": header,
                    "created_at": first + timedelta(seconds=m * 30),
                    "parse_warnings": [],
                    "published": True,
                }
            )
        conv_batch.append(
            {
                "_id": cid,
                "account_id": account_id,
                "topic_id": topic_id,
                "stream_id": stream_id,
                "subject": subject,
                "normalized_subject": subject.lower(),
                "customer": customer,
                "customer_key": customer["address"],
                "status": random.choice(["open", "open", "pending", "closed"]),
                "tags": [],
                "assignee": None,
                "priority": "normal",
                "message_count": per,
                "last_message_at": first + timedelta(seconds=(per - 1) * 30),
                "last_inbound_at": first,
                "last_inbound_message_id": message_ids[0],
                "created_at": first,
                "updated_at": first,
                "message_ids": message_ids,
                "origin_key": first_header,
            }
        )
        search_batch.append(
            {
                "_id": cid,
                "account_id": account_id,
                "terms": [
                    conversations_repo.search_snippet(subject, customer["name"], customer["address"]),
                    *(conversations_repo.search_snippet(subject, f"{BODY}(message {m})") for m in range(per)),
                ],
            }
        )
        if len(msg_batch) >= 2000:
            db.messages.insert_many(msg_batch, ordered=False)
            db.conversations.insert_many(conv_batch, ordered=False)
            db[search_repo.COLLECTION].insert_many(search_batch, ordered=False)
            msg_batch, conv_batch, search_batch = [], [], []
    if msg_batch:
        db.messages.insert_many(msg_batch, ordered=False)
        db.conversations.insert_many(conv_batch, ordered=False)
        db[search_repo.COLLECTION].insert_many(search_batch, ordered=False)
    return ids


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p50 = statistics.median(ordered)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return p50 * 1000, p99 * 1000


def timed(call, n: int) -> list[float]:
    for _ in range(min(3, n)):
        call()
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--conversations", type=int, default=20_000)
    parser.add_argument("--messages-per", type=int, default=5)
    parser.add_argument("--noise-accounts", type=int, default=2)
    parser.add_argument("--noise-conversations", type=int, default=2_000)
    parser.add_argument("--requests", type=int, default=200, help="per operation served by _id lookups")
    parser.add_argument("--scan-requests", type=int, default=20, help="per list/search operation (scans on FerretDB)")
    parser.add_argument("--deep-offset", type=int, default=5_000)
    parser.add_argument("--only", choices=["list", "open", "search"], action="append", help="run only these rows")
    args = parser.parse_args()

    uri = os.environ.get("MONGODB_URI", "mongodb://127.0.0.1:27017/")
    amqp = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
    database = f"mailstream_bench_{uuid.uuid4().hex[:8]}"
    client = MongoClient(uri, tz_aware=True, socketTimeoutMS=300_000)
    db = client[database]
    info = client.admin.command("buildInfo")
    backend = f"FerretDB {info['ferretdbVersion']}" if info.get("ferretdbVersion") else f"MongoDB {info['version']}"
    try:
        account_id, key = asyncio.run(create_account_and_key(uri, database, "Bench"))
        started = time.perf_counter()
        ids = seed_account(db, account_id, args.conversations, args.messages_per, "a")
        for n in range(args.noise_accounts):
            noise_id, _ = asyncio.run(create_account_and_key(uri, database, f"Noise {n}"))
            seed_account(db, noise_id, args.noise_conversations, args.messages_per, f"n{n}-")
        seeded = time.perf_counter() - started
        # Counted here: FerretDB v1 answers even estimated_document_count by scanning the collection.
        total_messages = (args.conversations + args.noise_accounts * args.noise_conversations) * args.messages_per
        print(
            f"seeded {args.conversations} conversations / {args.conversations * args.messages_per} messages "
            f"(+ noise; {total_messages} messages in all) in {seeded:.0f}s on {backend}",
            flush=True,
        )

        sort = [("last_message_at", DESCENDING), ("_id", DESCENDING)]
        listing = {"account_id": account_id}
        projection = conversations_repo.LIST_PROJECTION
        print("finding the deep cursor...", flush=True)
        deep = next(
            iter(db.conversations.find(listing, {"last_message_at": 1}).sort(sort).skip(args.deep_offset - 1).limit(1))
        )
        deep_cursor = encode_cursor({"last_message_at": deep["last_message_at"], "_id": deep["_id"]})
        deep_filter = {
            "$and": [
                listing,
                {
                    "$or": [
                        {"last_message_at": {"$lt": deep["last_message_at"]}},
                        {"last_message_at": deep["last_message_at"], "_id": {"$lt": deep["_id"]}},
                    ]
                },
            ]
        }
        term = f"customera{args.conversations * 2 // 3}@example"
        search_pattern = search_repo.term_pattern(term)

        with contextlib.ExitStack() as stack:
            amqp_url = stack.enter_context(vhost(amqp))
            port = free_port()
            env = {
                **os.environ,
                "MONGODB_URI": uri,
                "MONGODB_DATABASE": database,
                "AMQP_URL": amqp_url,
                "INBOX_HTTP_PORT": str(port),
                "INBOX_ROLE": "api",
                "LOG_LEVEL": "WARNING",
            }
            gateway_log = stack.enter_context(Path(os.environ.get("BENCH_GATEWAY_LOG", os.devnull)).open("ab"))
            proc = subprocess.Popen(
                [sys.executable, "-m", "mailstream_inbox"], env=env, stdout=gateway_log, stderr=subprocess.STDOUT
            )
            stack.callback(proc.wait, 30)
            stack.callback(proc.terminate)
            base = f"http://127.0.0.1:{port}"
            wait_ready(f"{base}/readyz", proc, timeout=300)
            print(f"gateway ready after {time.perf_counter() - started - seeded:.0f}s", flush=True)
            http = stack.enter_context(
                httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=600)
            )

            def api(path, params=None):
                def call():
                    response = http.get(path, params=params)
                    assert response.status_code == 200, response.text
                    return response.json()

                return call

            def bare(collection, query, sort_by, projection=None):
                return lambda: list(db[collection].find(query, projection).sort(sort_by).limit(51))

            def search_bare():
                # What the API does: the matching ids from the search collection, then the page of conversations.
                found = [
                    d["_id"]
                    for d in db[search_repo.COLLECTION].find(
                        {"account_id": account_id, "terms": {"$regex": search_pattern}}, {"_id": 1}
                    )
                ]
                query = conversations_repo.search_query(
                    conversations_repo.list_query(account_id), search_pattern, found
                )
                return list(db.conversations.find(query, projection).sort(sort).limit(51))

            def open_api():
                return http.get(f"/v1/conversations/{random.choice(ids)}/messages", params={"limit": 50}).json()

            def open_bare():
                # The same documents the API returns, the way the API reads them (conversation, then each message
                # by _id), without HTTP, auth or serialisation. A `find({"conversation_id": ...})` is reported apart.
                conversation = db.conversations.find_one(
                    {"_id": random.choice(ids), "account_id": account_id}, {"message_ids": 1}
                )
                return [
                    db.messages.find_one({"_id": m, "account_id": account_id}, {"pending_event": 0, "headers": 0})
                    for m in conversation["message_ids"][:50]
                ]

            def open_bare_by_filter():
                return list(
                    db.messages.find(
                        {"conversation_id": random.choice(ids), "account_id": account_id},
                        {"pending_event": 0, "headers": 0},
                    )
                    .sort([("created_at", 1), ("_id", 1)])
                    .limit(51)
                )

            assert len(api("/v1/conversations", {"q": term})()["items"]) == 1
            scans, lookups = args.scan_requests, args.requests
            cases = [
                (
                    "list, first page",
                    scans,
                    api("/v1/conversations", {"limit": 50}),
                    bare("conversations", listing, sort, projection),
                ),
                (
                    f"list, deep page (after {args.deep_offset})",
                    scans,
                    api("/v1/conversations", {"limit": 50, "cursor": deep_cursor}),
                    bare("conversations", deep_filter, sort, projection),
                ),
                ("open conversation (its messages)", lookups, open_api, open_bare),
                (
                    "search q=<customer address>",
                    scans,
                    api("/v1/conversations", {"q": term, "limit": 50}),
                    search_bare,
                ),
            ]
            print(
                "\n| operation | requests | API p50 ms | API p99 ms | bare pymongo p50 ms | bare pymongo p99 ms | "
                "p99 ratio |"
            )
            print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
            wanted = {"list": "list", "open": "open", "search": "search"}
            if args.only:
                cases = [c for c in cases if any(c[0].startswith(wanted[o]) for o in args.only)]
            for name, n, api_call, bare_call in cases:
                a50, a99 = percentiles(timed(api_call, n))
                b50, b99 = percentiles(timed(bare_call, n))
                print(
                    f"| {name} | {n} | {a50:.1f} | {a99:.1f} | {b50:.1f} | {b99:.1f} | {a99 / b99:.1f}x |", flush=True
                )
            f50, f99 = percentiles(timed(open_bare_by_filter, min(scans, 5)))
            print(
                f"\nfor comparison, messages of a conversation by `find({{conversation_id}})`: "
                f"p50 {f50:.1f} ms, p99 {f99:.1f} ms ({min(scans, 5)} requests)",
                flush=True,
            )
    finally:
        client.drop_database(database)
        client.close()


if __name__ == "__main__":
    main()
