"""Baselines of bench/ingest_smtp.py, with the same aiosmtpd set-up as ingest:

python bench/ingest_bare_smtp.py PORT              # a handler that only answers 250
python bench/ingest_bare_smtp.py PORT AMQP_URL [quorum|classic]
    # a minimal handler that publishes the raw mail persistent to a durable queue of that type (quorum unless
    # named) with publisher confirms, then answers 250
python bench/ingest_bare_smtp.py PORT AMQP_URL event
    # the same, but what it publishes is ingest's: a MailReceived through mailstream_common's Broker
"""

import asyncio
import sys

import aio_pika
from aiosmtpd.smtp import SMTP


class Accept:
    async def handle_DATA(self, server, session, envelope) -> str:
        return "250 2.0.0 OK"


class PublishThenAccept:
    def __init__(self, exchange: aio_pika.abc.AbstractExchange, queue: str) -> None:
        self.exchange = exchange
        self.queue = queue

    async def handle_DATA(self, server, session, envelope) -> str:
        message = aio_pika.Message(envelope.original_content, delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
        try:
            await self.exchange.publish(message, routing_key=self.queue, mandatory=True)
        except Exception:
            return "451 4.3.0 not stored"
        return "250 2.0.0 OK"


class PublishEventThenAccept:
    def __init__(self, broker) -> None:
        self.broker = broker

    async def handle_DATA(self, server, session, envelope) -> str:
        from datetime import UTC, datetime

        from mailstream_ingest.reception import build_mail_received, new_mail_id

        mail_id = new_mail_id()
        event = build_mail_received(
            mail_id=mail_id, received_at=datetime.now(UTC), raw=envelope.original_content, mail_from=envelope.mail_from,
            rcpt_to=envelope.rcpt_tos, targets=[], bounce_tokens=[], client_ip="127.0.0.1", helo=session.host_name,
            tls=False,
        )  # fmt: skip
        try:
            await self.broker.publish(event, correlation_id=mail_id)
        except Exception:
            return "451 4.3.0 not stored"
        return "250 2.0.0 OK"


async def serve(port: int, amqp_url: str | None, queue_type: str) -> None:
    loop = asyncio.get_running_loop()
    handler: object = Accept()
    if amqp_url and queue_type == "event":
        from mailstream_common import topology
        from mailstream_common.broker import Broker

        broker = Broker(amqp_url, service="bench")
        await broker.connect()
        await broker.declare(topology.INGEST_ANALYSE)
        handler = PublishEventThenAccept(broker)
    elif amqp_url:
        connection = await aio_pika.connect(amqp_url)
        channel = await connection.channel(publisher_confirms=True)
        name = f"bench.minimal.{queue_type}"
        await channel.declare_queue(name, durable=True, arguments={"x-queue-type": queue_type})
        handler = PublishThenAccept(channel.default_exchange, name)
    server = await loop.create_server(
        lambda: SMTP(handler, data_size_limit=25 * 1024 * 1024, hostname="bare", loop=loop),
        host="127.0.0.1",
        port=port,
        backlog=512,
    )
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else None, (sys.argv[3:] or ["quorum"])[0]))
