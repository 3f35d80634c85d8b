"""Does a TTL collection of DOCS documents stall the server's other reads? (issue 12; a SecantusDB question)

    uv run --frozen python bench/secantus_ttl_stalls.py --uri mongodb://127.0.0.1:27417/ [--plain-index]

Fills a private database's collection with DOCS live-event-sized documents that expire in an hour, under a TTL
index (or, with --plain-index, the same index without expireAfterSeconds: the control), then reads one document of
another collection every 20 ms for SECONDS seconds and prints p50/p99/max and every read over 100 ms (with its
time, to see a period). SecantusDB's TTL sweeper decodes every document of a TTL collection under a lock about once
a minute; MongoDB's does not, so a stall here is a SecantusDB figure only. The database is dropped at the end.
"""

import argparse
import datetime as dt
import time
import uuid

import pymongo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uri", required=True)
    parser.add_argument("--docs", type=int, default=20_000)
    parser.add_argument("--seconds", type=float, default=130.0)
    parser.add_argument("--plain-index", action="store_true", help="the control: no TTL")
    args = parser.parse_args()
    client = pymongo.MongoClient(args.uri)
    db = client[f"bench_ttl_{uuid.uuid4().hex[:8]}"]
    try:
        db.other.insert_many([{"_id": i} for i in range(100)])
        if args.plain_index:
            db.ev.create_index("expires_at")
        else:
            db.ev.create_index("expires_at", expireAfterSeconds=0)
        future = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
        doc = {"name": "message.received", "data": {"subject": "soak 0000001", "x": "y" * 600}, "expires_at": future}
        db.ev.insert_many([{**doc, "_id": i} for i in range(args.docs)])
        latencies = []
        end = time.time() + args.seconds
        while time.time() < end:
            began = time.perf_counter()
            db.other.find_one({"_id": 5})
            latencies.append((time.time(), (time.perf_counter() - began) * 1000))
            time.sleep(0.02)
        stalls = [(time.strftime("%H:%M:%S", time.gmtime(at)), round(ms)) for at, ms in latencies if ms > 100]
        ms = sorted(m for _, m in latencies)
        print(
            f"{'plain index' if args.plain_index else 'TTL index'}, {args.docs} documents: {len(ms)} reads, "
            f"p50 {ms[len(ms) // 2]:.1f} ms, p99 {ms[int(len(ms) * 0.99)]:.1f} ms, max {ms[-1]:.0f} ms; "
            f"reads over 100 ms: {stalls}"
        )
    finally:
        client.drop_database(db.name)


if __name__ == "__main__":
    main()
