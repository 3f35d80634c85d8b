"""The framing of DATA (pure): the same mail as aiosmtpd's line-by-line reading."""

import random

import pytest

from mailstream_ingest.smtp.framing import ends_data, unstuff
from tests.ingest.smtp.transfers import random_mail, stuffed


def reference(transfer: bytes, max_line_length: int) -> bytes | None:
    """aiosmtpd's reading, line by line: None for a line over the limit."""
    lines = transfer.split(b"\r\n")[:-2]  # the lone dot and what follows its CRLF
    if any(len(line) + 2 > max_line_length for line in lines):
        return None
    return b"".join((line[1:] if line.startswith(b".") else line) + b"\r\n" for line in lines)


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
