"""One HTTP/1.1 request over a plain socket with the request target exactly as given: no client in between that
could normalise dot segments or re-encode escapes. `sent` is what went on the wire."""

import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

import h11


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes
    sent: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


def raw_request(
    base_url: str, method: str, target: bytes, headers: dict[str, str] | None = None, timeout: float = 15.0
) -> RawResponse:
    url = urlsplit(base_url)
    head = [f"{method} ".encode() + target + b" HTTP/1.1", f"Host: {url.netloc}".encode()]
    head += [f"{name}: {value}".encode() for name, value in (headers or {}).items()]
    head.append(b"Connection: close")
    sent = b"\r\n".join(head) + b"\r\n\r\n"
    with socket.create_connection((url.hostname, url.port), timeout=timeout) as sock:
        sock.sendall(sent)
        chunks = []
        while data := sock.recv(65536):
            chunks.append(data)
    parser = h11.Connection(h11.CLIENT)
    # Tell h11 a request went out, so it accepts the response that follows.
    parser.send(h11.Request(method=method, target="/", headers=[("Host", url.netloc)]))
    parser.send(h11.EndOfMessage())
    parser.receive_data(b"".join(chunks))
    parser.receive_data(b"")
    status, response_headers, body = 0, {}, b""
    while True:
        event = parser.next_event()
        if isinstance(event, h11.Response):
            status = event.status_code
            response_headers = {k.decode().lower(): v.decode("latin-1") for k, v in event.headers}
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)) or event is h11.NEED_DATA:
            break
    return RawResponse(status, response_headers, body, sent)
