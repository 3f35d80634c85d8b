"""Sender throughput against Postfix's smtp-sink: signing cost per mail and mails/s per worker process.

    AMQP_URL=amqp://guest:guest@127.0.0.1:5672/ uv run python bench/sender_throughput.py [--count 8000]

Measures, for ~5 KB mails built by the sender's own `compose`:
  1. the signing step alone: stock dkimpy (`dkim.sign`, pure-Python RSA) vs the project's `FastDKIM`
     (dkimpy's canonicalisation + OpenSSL RSA through `cryptography`), and OpenSSL's RSA-2048 step by itself;
  2. worker processes that consume reply commands from RabbitMQ (prefetch = --concurrency), compose, sign
     (RSA-2048) or not, relay over the sender's pooled `SmtpRelay` to smtp-sink, and ack: unsigned (the ceiling),
     stock dkimpy, fast signing; one worker and two, draining a pre-filled queue.
Not in this loop: the service's `sender_deliveries` state writes and the report publish (see
docs/benchmarks/sender.md).
"""

import argparse
import asyncio
import json
import multiprocessing
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime

import aio_pika
import dkim
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from mailstream_common.contracts import Address, ReplyRequested
from mailstream_sender.compose import compose
from mailstream_sender.dkim_fast import FastDKIM
from mailstream_sender.smtp_relay import RelayConfig, SmtpRelay
from mailstream_sender.templating import render

SMTP_SINK = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
SENDER = Address(name="Acme Support", address="support@acme.test")


def build_mail(size: int, n: int) -> bytes:
    request = reply_request(size, n)
    return compose(request, SENDER, render(None, request.text, None, {}), datetime.now(UTC)).data


def rate(fn, seconds: float) -> tuple[float, float]:
    """(calls per wall-clock second, calls per CPU second of this process). On a busy shared machine the second
    is the steadier measure of what one core can do."""
    count, started, cpu_started = 0, time.perf_counter(), time.process_time()
    while (elapsed := time.perf_counter() - started) < seconds:
        fn()
        count += 1
    return count / elapsed, count / (time.process_time() - cpu_started)


def signing_rates(key: rsa.RSAPrivateKey, pem: bytes, message: bytes, seconds: float) -> dict[str, float]:
    digest = b"\x01" * 32
    measured = {
        "openssl_rsa2048_sign": rate(lambda: key.sign(digest, padding.PKCS1v15(), Prehashed(hashes.SHA256())), seconds),
        "stock_dkimpy_sign": rate(lambda: dkim.sign(message, b"ms1", b"acme.test", pem), seconds),
        "fast_dkim_sign": rate(lambda: FastDKIM(message).sign_with_key(b"ms1", b"acme.test", key), seconds),
    }
    results: dict[str, float] = {}
    for name, (wall, cpu) in measured.items():
        results[f"{name}_per_s"] = wall
        results[f"{name}_per_cpu_s"] = cpu
    return results


def reply_request(size: int, n: int) -> ReplyRequested:
    paragraph = "Thank you for your message. Your order has shipped and should arrive within two days.\n"
    length = max(0, (size - 900) // 2)  # the text goes out twice (plain and HTML) plus ~900 bytes of headers
    return ReplyRequested.model_validate(
        {
            "account_id": "a" * 32,
            "stream_id": "s" * 32,
            "message_id": f"{n:032x}",
            "message_id_header": f"<{n:032x}@in.mailstream.test>",
            "from": {"name": "Acme Support", "address": "support@acme.test"},
            "to": [{"name": "Kana Customer", "address": "kana@example.net"}],
            "subject": "Re: My order has not arrived",
            "in_reply_to": "<original@mail.example.net>",
            "text": (paragraph * (length // len(paragraph) + 1))[:length],
            "requested_by": "bench",
        }
    )


def worker(mode: str, amqp_url: str, queue_name: str, port: int, pem: bytes, concurrency: int, out) -> None:
    """Consume reply commands, compose, sign (or not), relay over pooled connections, ack; until the queue is
    empty. Reports (count, first ack time, last ack time, CPU seconds this worker used)."""
    key = serialization.load_pem_private_key(pem, None)

    def build(request: ReplyRequested) -> bytes:
        mail = compose(request, SENDER, render(None, request.text, None, {}), datetime.now(UTC)).data
        if mode == "stock":
            return dkim.sign(mail, b"ms1", b"acme.test", pem) + mail
        if mode == "fast":
            return FastDKIM(mail).sign_with_key(b"ms1", b"acme.test", key) + mail
        return mail

    async def run() -> tuple[int, float, float, float]:
        relay = SmtpRelay(
            RelayConfig(
                "127.0.0.1", port, pool_size=concurrency, per_destination_concurrency=concurrency, helo_name="bench"
            )
        )
        connection = await aio_pika.connect(amqp_url)
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=concurrency)
        queue = await channel.get_queue(queue_name)
        acked, in_flight, first, last = 0, 0, 0.0, 0.0
        cpu_started = time.process_time()

        async def handle(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            nonlocal acked, in_flight, first, last
            in_flight += 1
            request = ReplyRequested.model_validate_json(message.body)
            result = await relay.send("bounce+x.abc@bounces.test", ["kana@example.net"], build(request))
            if not result.sent:
                raise RuntimeError(result.detail)
            await message.ack()
            last = time.perf_counter()
            first = first or last
            acked += 1
            in_flight -= 1

        await queue.consume(handle)
        while True:  # done once the queue has nothing ready and this worker nothing in flight
            await asyncio.sleep(0.2)
            ready = (await channel.declare_queue(queue_name, passive=True)).declaration_result.message_count
            if ready == 0 and in_flight == 0:
                break
        await connection.close()
        await relay.close()
        return acked, first, last, time.process_time() - cpu_started

    out.put(asyncio.run(run()))


async def fill_queue(amqp_url: str, queue_name: str, count: int, size: int) -> None:
    connection = await aio_pika.connect(amqp_url)
    channel = await connection.channel(publisher_confirms=True)
    await channel.declare_queue(queue_name, auto_delete=False)
    body = reply_request(size, 1)
    for start in range(0, count, 500):
        await asyncio.gather(
            *(
                channel.default_exchange.publish(
                    aio_pika.Message(
                        body=body.model_copy(update={"message_id": f"{n:032x}"}).model_dump_json(by_alias=True).encode()
                    ),
                    routing_key=queue_name,
                )
                for n in range(start, min(count, start + 500))
            )
        )
    await connection.close()


async def drop_queue(amqp_url: str, queue_name: str) -> None:
    connection = await aio_pika.connect(amqp_url)
    channel = await connection.channel()
    await channel.queue_delete(queue_name)
    await connection.close()


def delivery_rate(mode: str, workers: int, count: int, port: int, pem: bytes, args) -> tuple[float, float]:
    """(mails/s for all workers together, mails per CPU second of one worker process)."""
    queue_name = f"bench.sender.{uuid.uuid4().hex[:8]}"
    asyncio.run(fill_queue(args.amqp_url, queue_name, count, args.size))
    results: multiprocessing.Queue = multiprocessing.Queue()
    procs = [
        multiprocessing.Process(
            target=worker, args=(mode, args.amqp_url, queue_name, port, pem, args.concurrency, results)
        )
        for _ in range(workers)
    ]
    for p in procs:
        p.start()
    outcomes = [results.get() for _ in procs]
    for p in procs:
        p.join()
    asyncio.run(drop_queue(args.amqp_url, queue_name))
    total = sum(o[0] for o in outcomes)
    if total != count:
        raise RuntimeError(f"{mode}: {total} of {count} commands handled")
    started = min(o[1] for o in outcomes if o[0])
    finished = max(o[2] for o in outcomes if o[0])
    return total / (finished - started), total / sum(o[3] for o in outcomes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each signing measurement")
    parser.add_argument("--count", type=int, default=8000, help="commands per unsigned run (fast: 1/2, stock: 1/10)")
    parser.add_argument("--amqp-url", default=os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"))
    parser.add_argument("--concurrency", type=int, default=16, help="SMTP transactions in flight per worker")
    parser.add_argument("--size", type=int, default=5000, help="approximate mail size in bytes")
    args = parser.parse_args()

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )
    message = build_mail(args.size, 1)
    results: dict[str, object] = {"mail_bytes": len(message), "cpus": os.cpu_count(), "load_before": os.getloadavg()}
    results.update(signing_rates(key, pem, message, args.seconds))

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sink_dir = tempfile.mkdtemp()
    sink = subprocess.Popen(
        [SMTP_SINK, "-u", "nobody", f"127.0.0.1:{port}", "1024"],
        cwd=sink_dir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(0.3)  # smtp-sink binds at once; a failed bind shows in the first send
        counts = {"unsigned": args.count, "stock": max(200, args.count // 10), "fast": args.count // 2}
        for mode in ("unsigned", "stock", "fast"):
            for workers in (1, 2):
                wall, per_cpu = delivery_rate(mode, workers, counts[mode], port, pem, args)
                results[f"deliver_{mode}_{workers}w_per_s"] = wall
                results[f"deliver_{mode}_{workers}w_per_worker_cpu_s"] = per_cpu
    finally:
        sink.terminate()
        sink.wait()
        shutil.rmtree(sink_dir, ignore_errors=True)
    results["load_after"] = os.getloadavg()
    rounded = {k: round(v, 1) if isinstance(v, float) else v for k, v in results.items()}
    json.dump(rounded, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
