"""DATA transfers as a client sends them, for the framing and listener tests."""

import random


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
