"""The one shape every service's part of a data request has: erase (or collect) what it owns, then report
`DataErasurePartDone`.

A service gives plain async functions `erase(request) -> counts` and `export(request) -> records by kind`;
`consume_data_requests` makes them the consumer of the service's `<service>.data_requests` queue. They must be
re-runnable (a redelivery after a crash half-way runs them again, and an erasure finds less to do), so the consumer
needs no state of its own: the report is published after the work, and published again on a redelivery, which
inbox records once.
"""

import hashlib
import hmac
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from . import topology
from .broker import Broker, Delivery
from .contracts import DataErasurePartDone, DataErasureRequested, DataExportRequested

log = logging.getLogger(__name__)

EraseFunction = Callable[[DataErasureRequested], Awaitable[dict[str, int]]]
Records = dict[str, list[dict[str, Any]]]
ExportFunction = Callable[[DataExportRequested], Awaitable[Records]]


def data_request_handler(
    service: str, broker: Broker, erase: EraseFunction, export: ExportFunction
) -> Callable[[DataErasureRequested | DataExportRequested, Delivery], Awaitable[None]]:
    async def handle(request: DataErasureRequested | DataExportRequested, delivery: Delivery) -> None:
        records: Records = {}
        if isinstance(request, DataExportRequested):
            records = await export(request)
            counts = {kind: len(found) for kind, found in records.items()}
        else:
            counts = await erase(request)
        await broker.publish(
            DataErasurePartDone(
                request_id=request.request_id,
                account_id=request.account_id,
                service=service,
                counts=counts,
                records=records,
            ),
            correlation_id=request.correlation_id,
        )
        # Never the address: the request id is what ties a log line to a request.
        log.info("data request part done", extra={"request_id": request.request_id, "counts": counts})

    return handle


def consume_data_requests(
    broker: Broker, service: str, *, erase: EraseFunction, export: ExportFunction | None = None
) -> None:
    """Register the service's part of data requests on its own durable queue (one at a time: they are rare)."""
    broker.consume(
        topology.DATA_REQUEST_QUEUES[service],
        data_request_handler(service, broker, erase, export or nothing_exported),
        topology.DATA_REQUEST_EVENTS,
        prefetch=1,
    )


async def nothing_kept(request: DataErasureRequested) -> dict[str, int]:
    """The part of a service that keeps no personal data (it still reports, so that the request can finish)."""
    return {}


async def nothing_exported(request: DataExportRequested) -> Records:
    return {}


def address_key(secret: bytes, address: str) -> str:
    """A keyed hash of an address (lower-cased): lets a service recognise an address again without keeping it."""
    return "hmac-sha256:" + hmac.new(secret, address.strip().lower().encode(), hashlib.sha256).hexdigest()
