"""The protocol's shortcuts answer exactly as aiosmtpd does without them."""

import asyncio
from types import SimpleNamespace

import pytest
from aiosmtpd.smtp import SMTP

from mailstream_ingest.smtp import _PLAIN_PATH

PATHS = [
    "<a@b.c>", " <x@y>", "<a.b+c@d-e.f> SIZE=100 BODY=8BITMIME", "<a@b.c>  SIZE=1  ", "<fwd-1@in.mailstream.test>",
    '<"q x"@b.c>', "<a@[1.2.3.4]>", "<a..b@c>", "<.a@b>", "<a@b> (comment)", "<>", "<a@b.c>x", "<a@b.c> SIZE=1 (c)",
    "<@route:a@b.c>", "a@b.c", "<a@b.c> <x>", "<ü@b.c>", "<a@b.c>\tSIZE=5",
]  # fmt: skip


class _Handler:
    pass


@pytest.mark.parametrize("path", PATHS)
def test_plain_paths_parse_as_aiosmtpd_parses_them(path):
    loop = asyncio.new_event_loop()
    try:
        reference = SMTP._getaddr(SMTP(_Handler(), loop=loop, hostname="x"), path)
    finally:
        loop.close()
    plain = _PLAIN_PATH.fullmatch(path)
    if plain is not None:  # anything else goes to aiosmtpd's own parser
        assert (plain.group(1), plain.group(2) or "") == reference


async def test_a_multi_line_reply_goes_out_whole_and_single_lines_at_once():
    from mailstream_ingest.smtp import _IngestSMTP

    written: list[bytes] = []

    class Writer:
        def write(self, data: bytes) -> None:
            written.append(data)

        async def drain(self) -> None:
            pass

    protocol = object.__new__(_IngestSMTP)
    protocol._pending_lines = []
    protocol._writer = Writer()
    protocol.enable_SMTPUTF8 = True
    protocol.session = SimpleNamespace(peer=("127.0.0.1", 1))
    for line in ("250-in.example", "250-SIZE 100", "250 HELP", "250-a\r\n250 b", "354 go"):
        await protocol.push(line)
    assert written == [b"250-in.example\r\n250-SIZE 100\r\n250 HELP\r\n", b"250-a\r\n250 b\r\n", b"354 go\r\n"]
