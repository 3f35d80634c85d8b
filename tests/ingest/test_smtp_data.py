"""DATA read in large pieces: the same mail, replies and limits as aiosmtpd's line-by-line reading."""

import asyncio
import random

import pytest

from mailstream_common.contracts import MailReceived
from mailstream_common.contracts.mail import StreamTarget
from mailstream_ingest.recipients import RecipientDirectory, Route, StreamCache
from mailstream_ingest.smtp import IngestHandler, SmtpFrontDoor
from mailstream_ingest.smtp_data import ends_data, unstuff

RCPT = "fwd-1@in.example"


def reference(transfer: bytes, max_line_length: int) -> bytes | None:
    """aiosmtpd's reading, line by line: None for a line over the limit."""
    lines = transfer.split(b"\r\n")[:-2]  # the lone dot and what follows its CRLF
    if any(len(line) + 2 > max_line_length for line in lines):
        return None
    return b"".join((line[1:] if line.startswith(b".") else line) + b"\r\n" for line in lines)


def stuffed(mail: bytes) -> bytes:
    """What a client sends for `mail` (ending in CRLF): every line starting with a dot gets another."""
    lines = mail.split(b"\r\n")[:-1]
    return b"".join((b"." + line if line.startswith(b".") else line) + b"\r\n" for line in lines) + b".\r\n"


def random_mail(rng: random.Random) -> bytes:
    pieces = [b".", b"..", b"x", b"hello.", b"\n", b"\r", b" ", b"\xff", b"a" * rng.randint(0, 90)]
    lines = [
        b"".join(rng.choice(pieces) for _ in range(rng.randint(0, 12))).replace(b"\r\n", b"")
        for _ in range(rng.randint(0, 30))
    ]
    return b"".join(line.rstrip(b"\r") + b"\r\n" for line in lines)


@pytest.mark.parametrize("seed", range(200))
def test_unstuff_agrees_with_line_by_line_reading(seed):
    rng = random.Random(seed)
    transfer = stuffed(random_mail(rng))
    limit = rng.choice([1001, 50, 20])
    assert unstuff(transfer, limit) == reference(transfer, limit)


def test_the_end_is_a_lone_dot_on_its_own_line():
    assert ends_data(b".\r\n", 3)
    assert ends_data(b"i\r\n.\r\n", 10)
    assert not ends_data(b"ends.\r\n"[-5:], 20)
    assert not ends_data(b"\r\n..\r\n"[-5:], 20)
    assert not ends_data(b"x.\r\n", 4)


def test_dot_stuffed_round_trip():
    mail = b"Subject: dots\r\n\r\n.\r\n..\r\n.hidden\r\nend.\r\n"
    assert unstuff(stuffed(mail), 1001) == mail
    assert unstuff(b".\r\n", 1001) == b""


async def _cached(address: str) -> Route | None:
    if address == RCPT:
        target = StreamTarget(forwarding_address=RCPT, stream_id="s1", account_id="a1", stream_address="x@acme.example")
        return Route(target, version=1)
    return None


async def _front_door(published: list[MailReceived]) -> SmtpFrontDoor:
    async def publish(event: MailReceived) -> None:
        published.append(event)

    directory = RecipientDirectory(
        StreamCache(_cached, positive_ttl=60, negative_ttl=5), verp_secret=b"t", bounce_domain="b.example"
    )
    door = SmtpFrontDoor(
        IngestHandler(directory, publish, max_recipients=5),
        host="127.0.0.1", port=0, hostname="in.example", max_message_bytes=60_000, max_line_length=2000,
        max_sessions=10, timeout=10,
    )  # fmt: skip
    await door.start()
    return door


async def _converse(port: int, chunks: list[bytes]) -> list[bytes]:
    """Send a pipelined session in the given pieces (with pauses between them); the replies, one per line."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for chunk in chunks:
        writer.write(chunk)
        await writer.drain()
        await asyncio.sleep(0.002)
    replies = []
    while not replies or not replies[-1].startswith(b"221"):
        replies.append(await asyncio.wait_for(reader.readline(), 10))
    writer.close()
    return [r for r in replies if not r.startswith(b"250-")]


@pytest.mark.parametrize("seed", range(6))
async def test_mails_split_anywhere_arrive_whole_and_pipelined_commands_after_them_are_answered(seed):
    rng = random.Random(seed)
    published: list[MailReceived] = []
    door = await _front_door(published)
    try:
        mails = [random_mail(rng) for _ in range(2)] + [b"", b"x" * 1500 + b"\r\n" + b".a\r\n" * 4000]
        session = b"EHLO c.example\r\n"
        for mail in mails:
            session += f"MAIL FROM:<a@b.example>\r\nRCPT TO:<{RCPT}>\r\nDATA\r\n".encode() + stuffed(mail)
        session += b"QUIT\r\n"
        cuts = sorted(rng.sample(range(1, len(session)), 40))
        chunks = [session[a:b] for a, b in zip([0, *cuts], [*cuts, len(session)], strict=True)]
        replies = await _converse(door.port, chunks)
        assert [r[:3] for r in replies] == [b"220", b"250"] + [b"250", b"250", b"354", b"250"] * len(mails) + [b"221"]
        assert [event.raw for event in published] == mails
    finally:
        await door.stop(1)


async def test_oversized_and_overlong_mails_are_refused_after_the_whole_transfer():
    published: list[MailReceived] = []
    door = await _front_door(published)
    try:
        head = f"EHLO c.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<{RCPT}>\r\nDATA\r\n".encode()
        again = f"MAIL FROM:<a@b.example>\r\nRCPT TO:<{RCPT}>\r\nDATA\r\n".encode()
        session = head + b"y" * 70 + b"\r\n" + (b"z" * 998 + b"\r\n") * 70 + b".\r\n"
        session += again + b"w" * 2500 + b"\r\n.\r\n" + again + b"ok\r\n.\r\nQUIT\r\n"
        replies = await _converse(door.port, [session[i : i + 4096] for i in range(0, len(session), 4096)])
        codes = [r[:3] for r in replies]
        assert codes[:10] == [b"220", b"250", b"250", b"250", b"354", b"552", b"250", b"250", b"354", b"500"]
        assert codes[10:] == [b"250", b"250", b"354", b"250", b"221"]
        assert [event.raw for event in published] == [b"ok\r\n"]
    finally:
        await door.stop(1)
