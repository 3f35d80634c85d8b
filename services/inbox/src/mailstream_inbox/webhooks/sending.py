"""One HTTP attempt: resolve, refuse private destinations, POST the signed body, and describe what came back.

No redirect is followed (a 3xx is a failed attempt: the receiver must give its final URL), the whole attempt has
one timeout, and only the first KiB of the response is read and kept. The connection goes to the address that was checked
(`destinations.pinned`), so a second DNS answer cannot point it elsewhere.
"""

import asyncio
import contextlib
import socket
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from .destinations import pinned, refusal_of_addresses

SNIPPET_BYTES = 1024
USER_AGENT = "Mailstream-Webhooks/1.0"


@dataclass(frozen=True)
class AttemptResult:
    status: int | None
    latency_ms: int
    snippet: str
    error: str | None

    @property
    def succeeded(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    def as_record(self) -> dict[str, object]:
        return {
            "status_code": self.status,
            "latency_ms": self.latency_ms,
            "response_snippet": self.snippet,
            "error": self.error,
            "outcome": "succeeded" if self.succeeded else "failed",
        }

    @property
    def reason(self) -> str:
        """One short line for the delivery and the disable announcement."""
        if self.error:
            return self.error
        return f"HTTP {self.status}"


async def resolve(host: str, port: int) -> list[str]:
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return []
    return sorted({info[4][0] for info in infos})


async def attempt(
    client: httpx.AsyncClient,
    url: str,
    headers: dict[str, str],
    body: bytes,
    *,
    timeout: float,
    allow_private: bool,
) -> AttemptResult:
    started = time.perf_counter()

    def elapsed() -> int:
        return int((time.perf_counter() - started) * 1000)

    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    addresses = await resolve(parts.hostname or "", port)
    refusal = refusal_of_addresses(addresses, allow_private=allow_private)
    if refusal is not None:
        return AttemptResult(None, elapsed(), "", f"destination refused: {refusal}")
    target, host_header, server_name = pinned(url, addresses[0])
    request_headers = {**headers, "host": host_header, "content-type": "application/json", "user-agent": USER_AGENT}
    extensions = {"sni_hostname": server_name} if server_name else {}
    try:
        async with asyncio.timeout(timeout):
            request = client.build_request("POST", target, content=body, headers=request_headers, extensions=extensions)
            async with contextlib.aclosing(await client.send(request, stream=True)) as response:
                snippet = b""
                async for chunk in response.aiter_bytes():
                    snippet += chunk
                    if len(snippet) >= SNIPPET_BYTES:
                        break
    except TimeoutError:
        return AttemptResult(None, elapsed(), "", f"timeout after {timeout:g} s")
    except httpx.HTTPError as exc:
        return AttemptResult(None, elapsed(), "", f"{type(exc).__name__}: {exc}"[:300])
    except (OSError, ValueError, UnicodeError) as exc:  # a malformed answer or URL the client could not handle
        return AttemptResult(None, elapsed(), "", f"{type(exc).__name__}: {exc}"[:300])
    text = snippet[:SNIPPET_BYTES].decode("utf-8", errors="replace")
    error = None
    if 300 <= response.status_code < 400:
        error = f"HTTP {response.status_code}: redirects are not followed"
    elif not 200 <= response.status_code < 300:
        error = None  # the status says it
    return AttemptResult(response.status_code, elapsed(), text, error)


def new_client(concurrency: int) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        follow_redirects=False,
        trust_env=False,  # never through a proxy from the environment: the address check is about the endpoint
        limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
        timeout=None,  # noqa: S113 - one deadline for the whole attempt (asyncio.timeout above)
    )
