"""The one shape every service's part of a data erasure has: erase what it owns, then report `DataErasurePartDone`.

A service gives a plain async function `erase(request) -> counts`; `erasure_handler` turns it into the consumer of
the service's `<service>.data_erasure` queue. The function must be re-runnable (a redelivery after a crash
half-way runs it again and it finds less to do), so the consumer needs no state of its own: the report is
published after the erasure, and published again on a redelivery, which inbox records once.
"""

import hashlib
import hmac
import logging
from collections.abc import Awaitable, Callable

from .broker import Broker, Delivery
from .contracts import DataErasurePartDone, DataErasureRequested

log = logging.getLogger(__name__)

EraseFunction = Callable[[DataErasureRequested], Awaitable[dict[str, int]]]


def erasure_handler(
    service: str, broker: Broker, erase: EraseFunction
) -> Callable[[DataErasureRequested, Delivery], Awaitable[None]]:
    async def handle(request: DataErasureRequested, delivery: Delivery) -> None:
        counts = await erase(request)
        await broker.publish(
            DataErasurePartDone(
                request_id=request.request_id, account_id=request.account_id, service=service, counts=counts
            ),
            correlation_id=request.correlation_id,
        )
        # Never the address: the request id is what ties a log line to a request.
        log.info("data erasure part done", extra={"request_id": request.request_id, "counts": counts})

    return handle


async def nothing_kept(request: DataErasureRequested) -> dict[str, int]:
    """The part of a service that keeps no personal data (it still reports, so that the request can finish)."""
    return {}


def address_key(secret: bytes, address: str) -> str:
    """A keyed hash of an address (lower-cased): lets a service recognise an address again without keeping it."""
    return "hmac-sha256:" + hmac.new(secret, address.strip().lower().encode(), hashlib.sha256).hexdigest()
