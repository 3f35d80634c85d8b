"""The framing of an SMTP DATA transfer (RFC 5321 4.5.2), pure: where it ends, dot-unstuffing, line limits.

The SMTP protocol reads DATA in large pieces instead of line by line; these functions decide what the pieces mean.
"""

END = b"\r\n.\r\n"
"""A lone dot on a line ends DATA; the CRLF before it may be the DATA command's own (an empty mail)."""


def ends_data(tail: bytes, total: int) -> bool:
    """Whether the bytes read so far (their last five, and how many) end with the lone-dot line."""
    return tail.endswith(END) or (total == 3 and tail == END[2:])


def unstuff(transfer: bytes, max_line_length: int) -> bytes | None:
    """The mail of a whole transfer (up to and including the lone dot): the leading dot of every line removed.

    None when a line, CRLF included, is longer than `max_line_length` (the caller answers 500).
    """
    body = transfer[:-3]
    if len(body) > max_line_length - 2 and max(map(len, body.split(b"\r\n"))) + 2 > max_line_length:
        return None
    if body.startswith(b"."):
        body = body[1:]
    return body.replace(b"\r\n.", b"\r\n")
