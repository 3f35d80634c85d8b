"""The protocol's shortcuts answer exactly as aiosmtpd does without them."""

import asyncio

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
