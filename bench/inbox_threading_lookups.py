"""What participants and reply tokens add to storing one inbound mail: the new look-ups next to the old one.

    eval "$(scripts/deps.sh)" && uv run python bench/inbox_threading_lookups.py [--conversations 20000] [--lookups 300]

One run, on a private database (removed at the end). CONVERSATIONS conversations of one stream are created through
the repository the store consumer uses: one by `create_once`, `add_participants` and `ensure_reply_token`, the
rest bulk clones of that document (so the documents and indexes are the service's own). Then, alternating one call of each so all see the same machine:

- baseline: `find_by_subject`, the subject fallback's look-up every stored reply already made before this change;
- `find_by_participant_subject`: the same fallback for a Cc'd participant (one more read per mail);
- `find_by_reply_tokens`: the conversation-token look-up (one more read per mail that names a token);
- `add_participants`: the `$addToSet` every stored mail now makes (here a repeat, which changes nothing: the
  common case of a customer writing again).

Prints a markdown table (p50/p99 in ms and p50 relative to the baseline) with the server and the load average.
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
from mailstream_inbox.repositories import conversations as conversations_repo


async def seed(db, stream_id: str, count: int) -> list[tuple[str, str, str, str]]:
    """(conversation id, subject, participant, token) per conversation: one made by the repository, the others
    clones of its document (bulk, so whatever shape the repository writes is what is measured)."""
    now = datetime.now(UTC)
    template, _ = await conversations_repo.create_once(
        db,
        account_id="a" * 32,
        topic_id="t" * 32,
        stream_id=stream_id,
        subject="order 0 question",
        normalized_subject="order 0 question",
        customer={"name": "", "address": "customer0@example.net"},
        origin_key="<template@example.net>",
        started_at=now,
    )
    await conversations_repo.add_participants(db, template["_id"], ["customer0@example.net", "colleague0@example.com"])
    token = await conversations_repo.ensure_reply_token(db, template["_id"], "abcdefghij00")
    shape = await db[conversations_repo.COLLECTION].find_one({"_id": template["_id"]})
    rows = [(template["_id"], "order 0 question", "colleague0@example.com", token)]
    batch = []
    for index in range(1, count):
        subject = f"order {index} question"
        clone = {
            **shape,
            "_id": uuid.uuid4().hex,
            "subject": subject,
            "normalized_subject": subject,
            "customer": {"name": "", "address": f"customer{index}@example.net"},
            "customer_key": f"customer{index}@example.net",
            "participants": [f"customer{index}@example.net", f"colleague{index}@example.com"],
            "reply_token": f"tok{index:09d}",
            "origin_key": f"<origin{index}@example.net>",
            "last_message_at": now - timedelta(minutes=index),
        }
        batch.append(clone)
        rows.append((clone["_id"], subject, f"colleague{index}@example.com", clone["reply_token"]))
        if len(batch) == 1000:
            await db[conversations_repo.COLLECTION].insert_many(batch)
            batch = []
    if batch:
        await db[conversations_repo.COLLECTION].insert_many(batch)
    return rows


def summary(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered) * 1000, ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--conversations", type=int, default=20000)
    parser.add_argument("--lookups", type=int, default=300)
    args = parser.parse_args()
    client = mongo.create_client(os.environ.get("MONGODB_URI", "mongodb://127.0.0.1:27017/"), app_name="bench")
    name = f"bench_people_{uuid.uuid4().hex[:8]}"
    db = client[name]
    try:
        await mongo.ensure_indexes(db, conversations_repo.INDEXES)
        stream_id = "s" * 32
        started = time.perf_counter()
        rows = await seed(db, stream_id, args.conversations)
        seeded = time.perf_counter() - started
        customer_of = {cid: f"customer{i}@example.net" for i, (cid, *_rest) in enumerate(rows)}
        timings: dict[str, list[float]] = {
            "find_by_subject (baseline)": [],
            "find_by_participant_subject": [],
            "find_by_reply_tokens": [],
            "add_participants (repeat)": [],
        }
        for lookup in range(args.lookups):
            cid, subject, colleague, token = rows[(lookup * 7919) % len(rows)]
            calls = {
                "find_by_subject (baseline)": conversations_repo.find_by_subject(
                    db, stream_id, subject, customer_of[cid]
                ),
                "find_by_participant_subject": conversations_repo.find_by_participant_subject(
                    db, stream_id, subject, colleague
                ),
                "find_by_reply_tokens": conversations_repo.find_by_reply_tokens(db, stream_id, [token]),
                "add_participants (repeat)": conversations_repo.add_participants(db, cid, [colleague]),
            }
            for label, call in calls.items():
                begin = time.perf_counter()
                found = await call
                timings[label].append(time.perf_counter() - begin)
                if label.startswith("find") and [c.conversation_id for c in found] != [cid]:
                    raise RuntimeError(f"{label} found {found!r}, expected {cid}")
        info = await db.command("buildInfo")
        server = f"SecantusDB {info['secantusVersion']}" if "secantusVersion" in info else f"MongoDB {info['version']}"
        base_p50, _ = summary(timings["find_by_subject (baseline)"])
        print(f"Server: {server}; {args.conversations} conversations (seeded in {seeded:.0f} s); "
              f"{args.lookups} calls each, interleaved; load average {os.getloadavg()[0]:.1f}\n")  # fmt: skip
        print("| call | p50 ms | p99 ms | p50 / baseline p50 |")
        print("|---|---:|---:|---:|")
        for label, samples in timings.items():
            p50, p99 = summary(samples)
            print(f"| {label} | {p50:.2f} | {p99:.2f} | {p50 / base_p50:.2f} |")
    finally:
        await client.drop_database(name)
        await client.close()


if __name__ == "__main__":
    asyncio.run(main())
