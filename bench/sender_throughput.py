"""Sender throughput against Postfix's smtp-sink: signing cost per mail and mails/s per worker process.

    uv run python bench/sender_throughput.py [--seconds 5] [--concurrency 16] [--size 5000]

Measures, for ~5 KB mails built by the sender's own `compose`:
  1. the signing step alone: stock dkimpy (`dkim.sign`, pure-Python RSA) vs the project's `FastDKIM`
     (dkimpy's canonicalisation + OpenSSL RSA through `cryptography`), and OpenSSL's RSA-2048 step by itself;
  2. a worker process composing, signing (RSA-2048) and relaying over pooled SMTP connections (the sender's
     `SmtpRelay`) to smtp-sink: unsigned (the ceiling), stock dkimpy, fast signing; one worker and two.
The broker and database round trips of the real consumer are not in this loop (see docs/benchmarks/sender.md).
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
from datetime import UTC, datetime

import dkim
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from mailstream_common.contracts import Address, ReplyRequested
from mailstream_sender.compose import compose
from mailstream_sender.delivery import RelayConfig, SmtpRelay
from mailstream_sender.dkim_fast import FastDKIM
from mailstream_sender.templating import render

SMTP_SINK = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
SENDER = Address(name="Acme Support", address="support@acme.test")


def build_mail(size: int, n: int) -> bytes:
    paragraph = "Thank you for your message. Your order has shipped and should arrive within two days. "
    length = max(0, (size - 900) // 2)  # the text goes out twice (plain and HTML) plus ~900 bytes of headers
    text = (paragraph * (length // len(paragraph) + 1))[:length]
    req = ReplyRequested.model_validate(
        {
            "account_id": "a" * 32,
            "stream_id": "s" * 32,
            "message_id": f"{n:032x}",
            "message_id_header": f"<{n:032x}@in.mailstream.test>",
            "from": {"name": "Acme Support", "address": "support@acme.test"},
            "to": [{"name": "Kana Customer", "address": "kana@example.net"}],
            "subject": "Re: My order has not arrived",
            "in_reply_to": "<original@mail.example.net>",
            "text": text,
            "requested_by": "bench",
        }
    )
    return compose(req, SENDER, render(None, req.text, None, {}), datetime.now(UTC)).data


def rate(fn, seconds: float) -> float:
    count, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        fn()
        count += 1
    return count / elapsed


def signing_rates(key: rsa.RSAPrivateKey, pem: bytes, message: bytes, seconds: float) -> dict[str, float]:
    digest = b"\x01" * 32
    return {
        "openssl_rsa2048_sign_per_s": rate(
            lambda: key.sign(digest, padding.PKCS1v15(), Prehashed(hashes.SHA256())), seconds
        ),
        "stock_dkimpy_per_s": rate(lambda: dkim.sign(message, b"ms1", b"acme.test", pem), seconds),
        "fast_dkim_per_s": rate(lambda: FastDKIM(message).sign_with_key(b"ms1", b"acme.test", key), seconds),
    }


def worker(mode: str, port: int, pem: bytes, size: int, seconds: float, concurrency: int, out) -> None:
    key = serialization.load_pem_private_key(pem, None)
    mail = build_mail(size, os.getpid())

    def signed() -> bytes:
        if mode == "stock":
            return dkim.sign(mail, b"ms1", b"acme.test", pem) + mail
        if mode == "fast":
            return FastDKIM(mail).sign_with_key(b"ms1", b"acme.test", key) + mail
        return mail

    async def run() -> int:
        relay = SmtpRelay(
            RelayConfig(
                "127.0.0.1",
                port,
                pool_size=concurrency,
                per_destination_concurrency=concurrency,
                helo_name="bench.test",
            )
        )
        sent = 0
        deadline = time.perf_counter() + seconds

        async def loop() -> None:
            nonlocal sent
            while time.perf_counter() < deadline:
                # compose is part of every send in the service; rebuild the headers' Date each time like it does
                data = signed()
                result = await relay.send("bounce+x.abc@bounces.test", ["kana@example.net"], data)
                if not result.sent:
                    raise RuntimeError(result.detail)
                sent += 1

        await asyncio.gather(*(loop() for _ in range(concurrency)))
        await relay.close()
        return sent

    out.put(asyncio.run(run()))


def delivery_rate(mode: str, workers: int, port: int, pem: bytes, args) -> float:
    queue: multiprocessing.Queue = multiprocessing.Queue()
    procs = [
        multiprocessing.Process(target=worker, args=(mode, port, pem, args.size, args.seconds, args.concurrency, queue))
        for _ in range(workers)
    ]
    for p in procs:
        p.start()
    total = sum(queue.get() for _ in procs)
    for p in procs:
        p.join()
    return total / args.seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each measurement")
    parser.add_argument("--concurrency", type=int, default=16, help="SMTP transactions in flight per worker")
    parser.add_argument("--size", type=int, default=5000, help="approximate mail size in bytes")
    args = parser.parse_args()

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )
    message = build_mail(args.size, 1)
    results: dict[str, object] = {"mail_bytes": len(message), "cpus": os.cpu_count(), "load_before": os.getloadavg()}
    results.update(signing_rates(key, pem, message, min(args.seconds, 3.0)))

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
        for mode in ("unsigned", "stock", "fast"):
            for workers in (1, 2):
                results[f"deliver_{mode}_{workers}w_per_s"] = delivery_rate(mode, workers, port, pem, args)
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
