"""What erasing one person costs inbox as the inbox grows (issue 17): the lookup a request makes, the whole erasure.

    eval "$(scripts/deps.sh)" && uv run python bench/data_erasure.py [--sizes 1000,10000] [--runs 15]

One run, on a private database (removed at the end). Per size N: one account with N conversations of other
customers (one message each, a live-event journal entry each) made by bulk inserts in the shapes inbox writes; then,
alternately, RUNS times:

- baseline: `find_targets` for a person with one conversation (what `POST /v1/data-requests` reads before it
  answers);
- erasure: `erase` of a person with three conversations of two messages (each seeded again before the run), who is
  also a Cc'd participant of one other customer's conversation (which is kept).

Prints a markdown table (p50/p99 in ms, p50 relative to the baseline of the same size) with the server and the load.
"""

import argparse
import asyncio
import os
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mailstream_common import mongo
from mailstream_inbox.repositories import blobs, ensure_indexes
from mailstream_inbox.repositories import data_erasure as erasure
from mailstream_inbox.repositories.conversations import COLLECTION as CONVERSATIONS
from mailstream_inbox.repositories.live_events import LIVE_EVENTS
from mailstream_inbox.repositories.messages import COLLECTION as MESSAGES

ACCOUNT = "a" * 32
NOW = datetime.now(UTC)


def conversation(cid: str, customer: str, participants: list[str], message_ids: list[str], n: int) -> dict:
    return {
        "_id": cid,
        "account_id": ACCOUNT,
        "stream_id": "s" * 32,
        "origin_key": cid,
        "subject": f"order {n}",
        "normalized_subject": f"order {n}",
        "customer": {"name": "", "address": customer},
        "customer_key": customer,
        "participants": participants,
        "terms": ["order", str(n), customer],
        "message_ids": message_ids,
        "message_count": len(message_ids),
        "status": "open",
        "last_message_at": NOW - timedelta(minutes=n),
    }


def message(mid: str, cid: str, sender: str, cc: list[str], raw: str, n: int) -> dict:
    return {
        "_id": mid,
        "account_id": ACCOUNT,
        "stream_id": "s" * 32,
        "dedup_key": mid,
        "conversation_id": cid,
        "direction": "inbound",
        "from": {"name": "", "address": sender},
        "to": [{"name": "", "address": "support@shop.test"}],
        "cc": [{"name": "", "address": a} for a in cc],
        "customer": {"name": "", "address": sender},
        "subject": f"order {n}",
        "text": "hello " * 50,
        "raw_blob_id": raw,
        "attachments": [],
        "created_at": NOW - timedelta(minutes=n),
    }


async def seed_others(db, count: int) -> None:
    raw = await blobs.put(db, b"Subject: shared raw of the others\r\n\r\nhello\r\n")
    for start in range(0, count, 1000):
        conversations, messages, events = [], [], []
        for n in range(start, min(count, start + 1000)):
            cid, mid, customer = uuid.uuid4().hex, uuid.uuid4().hex, f"customer{n}@example.net"
            conversations.append(conversation(cid, customer, [customer], [mid], n))
            messages.append(message(mid, cid, customer, [], raw, n))
            events.append(
                {"_id": uuid.uuid4().hex, "account_id": ACCOUNT, "key": f"{n:012d}", "data": {"message_id": mid}}
            )
        await db[CONVERSATIONS].insert_many(conversations)
        await db[MESSAGES].insert_many(messages)
        await db[LIVE_EVENTS].insert_many(events)


async def seed_person(db, person: str, run: int) -> None:
    for k in range(3):
        cid = f"{run}-{k}-{uuid.uuid4().hex}"
        ids = [uuid.uuid4().hex, uuid.uuid4().hex]
        raw = await blobs.put(db, f"From: {person}\r\nSubject: mine {run} {k}\r\n\r\nhi\r\n".encode())
        await db[CONVERSATIONS].insert_one(conversation(cid, person, [person], ids, k))
        await db[MESSAGES].insert_many([message(i, cid, person, [], raw, k) for i in ids])
    # Cc'd on someone else's conversation, which stays.
    cid, own, cc = f"{run}-cc-{uuid.uuid4().hex}", uuid.uuid4().hex, uuid.uuid4().hex
    other = f"colleague{run}@example.net"
    await db[CONVERSATIONS].insert_one(conversation(cid, other, [other, person], [own, cc], 5))
    await db[MESSAGES].insert_many([message(own, cid, other, [], None, 6), message(cc, cid, person, [other], None, 5)])


def summary(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered) * 1000, ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    client = mongo.create_client(os.environ.get("MONGODB_URI", "mongodb://127.0.0.1:27017/"), app_name="bench")
    rows = []
    try:
        for size in (int(s) for s in args.sizes.split(",")):
            name = f"bench_erasure_{uuid.uuid4().hex[:8]}"
            db = client[name]
            try:
                await ensure_indexes(db)
                await seed_others(db, size)
                await seed_person(db, "lookup@example.org", 0)
                lookups, erasures = [], []
                for run in range(1, args.runs + 1):
                    started = time.perf_counter()
                    found = await erasure.find_targets(db, ACCOUNT, "lookup@example.org")
                    lookups.append(time.perf_counter() - started)
                    assert len(found[1]) == 7, found
                    person = f"person{run}@example.org"
                    await seed_person(db, person, run)
                    started = time.perf_counter()
                    counts = await erasure.erase(db, ACCOUNT, address=person, conversation_ids=[])
                    erasures.append(time.perf_counter() - started)
                    assert counts["messages"] == 7 and counts["conversations_kept"] == 1, counts
                base = summary(lookups)
                measured = summary(erasures)
                rows.append((size, "`find_targets` (baseline)", *base, 1.0))
                rows.append((size, "`erase` (3 conversations + 1 kept)", *measured, measured[0] / base[0]))
                info = await db.command("buildInfo")
            finally:
                await client.drop_database(name)
        server = f"SecantusDB {info['secantusVersion']}" if "secantusVersion" in info else f"MongoDB {info['version']}"
        print(f"Server: {server}; {args.runs} runs per size, alternated; load average {os.getloadavg()[0]:.1f}\n")
        print("| conversations of others | call | p50 ms | p99 ms | p50 / baseline p50 |")
        print("| ---: | --- | ---: | ---: | ---: |")
        for size, call, p50, p99, ratio in rows:
            print(f"| {size} | {call} | {p50:.2f} | {p99:.2f} | {ratio:.2f} |")
    finally:
        await client.close()


if __name__ == "__main__":
    asyncio.run(main())
