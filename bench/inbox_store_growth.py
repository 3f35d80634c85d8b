"""Does storing one inbound mail get slower as the inbox's collections grow? (issue 12, the soak's slowdown)

    eval "$(scripts/deps.sh)" && uv run --frozen python bench/inbox_store_growth.py [--mails 3000] [--block 500]

One run, on a private database (removed at the end) and the broker's exchange (the published `MessageStored`
events go to one exclusive queue that keeps only the newest). MAILS unique mails, shaped like the soak's (one customer and
subject each, 1 KB), go through the store consumer's own `store_for_stream`, one after the other. A pymongo command
listener adds up the server time of every command per (command, collection), so a query whose cost grows with the
collection shows by name. Prints, per block of BLOCK mails: ms per mail, and the three costliest commands; then
the ratio of the last block to the first. The server and the load average are printed too: on SecantusDB these
are SecantusDB figures, not MongoDB's.
"""

import argparse
import asyncio
import hashlib
import os
import sys
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import aio_pika
from pymongo import AsyncMongoClient, monitoring

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mailstream_common import topology
from mailstream_common.broker import Broker
from mailstream_common.contracts import Address, MailAnalysed
from mailstream_common.contracts.mail import Envelope, StreamTarget
from mailstream_inbox.consumers import store
from mailstream_inbox.repositories import ensure_indexes
from mailstream_inbox.settings import InboxSettings


class CommandTimes(monitoring.CommandListener):
    """Server round-trip time per (command, collection), in seconds."""

    def __init__(self) -> None:
        self.totals: dict[str, float] = defaultdict(float)
        self.counts: dict[str, int] = defaultdict(int)
        self._names: dict[int, str] = {}

    def started(self, event):
        collection = event.command.get(event.command_name)
        self._names[event.request_id] = f"{event.command_name} {collection if isinstance(collection, str) else ''}"

    def succeeded(self, event):
        name = self._names.pop(event.request_id, event.command_name)
        self.totals[name] += event.duration_micros / 1e6
        self.counts[name] += 1

    def failed(self, event):
        self.succeeded(event)


def mail(n: int, stream_id: str, account_id: str) -> MailAnalysed:
    body = f"Hello, this is soak mail {n}.\r\n" + "x" * 900 + "\r\n"
    message_id = f"<soak-{n}-{uuid.uuid4().hex}@customer.example>"
    raw = (
        f"From: Customer {n} <c{n}@customer.example>\r\nTo: support@acme.test\r\nSubject: soak {n:07d}\r\n"
        f"Message-ID: {message_id}\r\n\r\n{body}"
    ).encode()
    return MailAnalysed(
        mail_id=uuid.uuid4().hex,
        received_at=datetime.now(UTC),
        envelope=Envelope(mail_from=f"c{n}@customer.example", rcpt_to=["s-bench@in.test"]),
        targets=[StreamTarget(forwarding_address="s-bench@in.test", stream_id=stream_id, account_id=account_id)],
        raw=raw,
        raw_sha256=hashlib.sha256(raw).hexdigest(),
        message_id_header=message_id,
        subject=f"soak {n:07d}",
        **{"from": Address(name=f"Customer {n}", address=f"c{n}@customer.example")},
        to=[Address(address="support@acme.test")],
        text=body,
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mails", type=int, default=3000)
    parser.add_argument("--block", type=int, default=500)
    args = parser.parse_args()

    times = CommandTimes()
    settings = InboxSettings()
    client = AsyncMongoClient(
        settings.mongodb_uri.get_secret_value(), event_listeners=[times], appname="bench-store-growth", tz_aware=True
    )
    db = client[f"bench_store_growth_{uuid.uuid4().hex[:8]}"]
    amqp_url = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
    broker = Broker(amqp_url, service="bench")
    await broker.connect()
    # The broker publishes `mandatory`: an event no queue takes comes back as an error. One exclusive queue that
    # keeps only the newest event takes them all, so the store path is measured, not a consumer.
    sink_connection = await aio_pika.connect(amqp_url)
    sink_channel = await sink_connection.channel()
    sink = await sink_channel.declare_queue(exclusive=True, arguments={"x-max-length": 1})
    await sink.bind(topology.EVENTS_EXCHANGE, routing_key="#")
    try:
        await ensure_indexes(db)
        account_id, stream_id = "a" * 32, "s" * 32
        await db.streams.insert_one(
            {
                "_id": stream_id,
                "account_id": account_id,
                "topic_id": "t" * 32,
                "deleted": False,
                "status": "receiving",
                "address": "support@acme.test",
                "forwarding_address": "s-bench@in.test",
            }
        )
        build = await client.admin.command("buildInfo")
        server = (
            f"SecantusDB {build['secantusVersion']}" if "secantusVersion" in build else f"MongoDB {build['version']}"
        )
        print(f"server: {server}; load average at start: {os.getloadavg()[0]:.1f}")
        print("| mails stored | ms per mail | costliest commands (ms per mail) |")
        print("| --- | --- | --- |")
        first = last = 0.0
        for start in range(0, args.mails, args.block):
            before = dict(times.totals)
            began = time.perf_counter()
            for n in range(start, start + args.block):
                event = mail(n, stream_id, account_id)
                await store.store_for_stream(db, broker, settings, event, event.targets[0])
            elapsed = (time.perf_counter() - began) / args.block * 1000
            deltas = {k: (v - before.get(k, 0.0)) / args.block * 1000 for k, v in times.totals.items()}
            top = sorted(deltas.items(), key=lambda kv: -kv[1])[:3]
            print(f"| {start + args.block} | {elapsed:.1f} | " + ", ".join(f"{k}: {v:.2f}" for k, v in top) + " |")
            first = first or elapsed
            last = elapsed
        print(f"\nlast block / first block: {last / first:.2f}; load average at end: {os.getloadavg()[0]:.1f}")
    finally:
        await client.drop_database(db.name)
        await client.close()
        await broker.close()
        await sink_connection.close()


if __name__ == "__main__":
    asyncio.run(main())
