"""Does a findAndModify by `_id` cost more as its collection grows? (issue 12; a SecantusDB question)

    uv run --frozen python bench/secantus_find_and_modify.py --uri mongodb://127.0.0.1:27614/ [--sizes 1000,4000]

For each size, fills a private database's collection with that many small conversation-shaped documents, then
times 30 calls of each shape below on one document, alternating nothing: `find_one_and_update` by `_id` (alone,
with `account_id`, with a guard on a field) against `update_one` and `find_one` with the same filters, the
baseline in the same run. On MongoDB all of them are point lookups on the `_id` index. SecantusDB 0.7.0b3 runs a
findAndModify's write with the filter `{_id: <matched>, $and: [<query>]}` (commands.py, `_find_and_modify_impl`),
and its write path takes the `_id` fast path only for a filter without `$` keys (storage.py, `_try_index_id_keys`):
every findAndModify walks the whole collection. So a growing ratio here is a SecantusDB figure only. The
database is dropped at the end.
"""

import argparse
import os
import time
import uuid
from collections.abc import Callable

import pymongo
from pymongo import ReturnDocument

REPEATS = 30


def timed(call: Callable[[], object]) -> float:
    began = time.perf_counter()
    for _ in range(REPEATS):
        call()
    return (time.perf_counter() - began) / REPEATS * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uri", required=True)
    parser.add_argument("--sizes", default="1000,4000,8000")
    args = parser.parse_args()
    client = pymongo.MongoClient(args.uri)
    build = client.admin.command("buildInfo")
    server = f"SecantusDB {build['secantusVersion']}" if "secantusVersion" in build else f"MongoDB {build['version']}"
    print(f"server: {server}; load average at start: {os.getloadavg()[0]:.1f}; ms per call, mean of {REPEATS}")
    shapes: list[tuple[str, Callable[[pymongo.collection.Collection], object]]] = [
        ("find_one_and_update {_id}", lambda c: c.find_one_and_update({"_id": "c1"}, {"$set": {"n": 1}})),
        (
            "find_one_and_update {_id, account_id}, after",
            lambda c: c.find_one_and_update(
                {"_id": "c1", "account_id": "a"}, {"$set": {"n": 1}}, return_document=ReturnDocument.AFTER
            ),
        ),
        (
            "find_one_and_update {tags: [], _id, account_id}",
            lambda c: c.find_one_and_update({"tags": [], "_id": "c1", "account_id": "a"}, {"$set": {"n": 1}}),
        ),
        (
            "update_one {_id, account_id} (baseline)",
            lambda c: c.update_one({"_id": "c1", "account_id": "a"}, {"$set": {"n": 1}}),
        ),
        ("find_one {_id, account_id} (baseline)", lambda c: c.find_one({"_id": "c1", "account_id": "a"})),
    ]
    db = client[f"bench_fam_{uuid.uuid4().hex[:8]}"]
    try:
        results: dict[str, list[float]] = {name: [] for name, _ in shapes}
        sizes = [int(s) for s in args.sizes.split(",")]
        for size in sizes:
            db.conversations.drop()
            db.conversations.insert_many(
                [{"_id": f"c{i}", "account_id": "a", "tags": [], "status": "open", "n": 0} for i in range(size)]
            )
            for name, shape in shapes:
                results[name].append(timed(lambda shape=shape: shape(db.conversations)))
        print("| call | " + " | ".join(f"{s:,} docs" for s in sizes) + f" | {sizes[-1]:,} / {sizes[0]:,} |")
        print("| --- |" + " ---: |" * (len(sizes) + 1))
        for name, values in results.items():
            cells = " | ".join(f"{v:.2f}" for v in values)
            print(f"| {name} | {cells} | {values[-1] / values[0]:.1f}x |")
        print(f"\nload average at end: {os.getloadavg()[0]:.1f}")
    finally:
        client.drop_database(db.name)
        client.close()


if __name__ == "__main__":
    main()
