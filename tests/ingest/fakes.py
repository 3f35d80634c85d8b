"""Stand-ins for the stream lookup behind the RCPT TO cache: a settable clock and a projection that counts reads."""

from mailstream_common.contracts.mail import StreamTarget
from mailstream_ingest.recipients import Route

SECRET = b"secret"
DOMAIN = "in.mailstream.test"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeStreams:
    """Ingest's `stream_routes` projection as the fallback sees it, counting reads."""

    def __init__(self) -> None:
        self.live: dict[str, StreamTarget] = {}
        self.reads = 0
        self.down = False

    async def __call__(self, address: str) -> Route | None:
        self.reads += 1
        if self.down:
            raise ConnectionError("database unreachable")
        found = self.live.get(address)
        return None if found is None else Route(found, 1)


def target(address: str, stream_id: str = "s1") -> StreamTarget:
    return StreamTarget(forwarding_address=address, stream_id=stream_id, account_id="a1")
