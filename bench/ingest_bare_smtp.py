"""The baseline of bench/ingest_smtp.py: aiosmtpd with a handler that only answers 250 (same loop set-up as ingest).

python bench/ingest_bare_smtp.py PORT
"""

import asyncio
import sys

from aiosmtpd.smtp import SMTP


class Accept:
    async def handle_DATA(self, server, session, envelope) -> str:
        return "250 2.0.0 OK"


async def serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(Accept(), data_size_limit=25 * 1024 * 1024, hostname="bare", loop=loop),
        host="127.0.0.1",
        port=port,
        backlog=512,
    )
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1])))
