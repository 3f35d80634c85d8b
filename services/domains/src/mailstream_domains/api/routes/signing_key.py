"""`/internal/signing-key`: the sender's read of a domain's private signing key.

The gateway neither forwards this path nor holds a credential it accepts; the account is the one the sender's reply
belongs to. Who read which key is logged (never the key) and counted.
"""

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from ... import metrics
from ..deps import Manager, SenderService
from ..schemas import SigningKey

log = logging.getLogger(__name__)

router = APIRouter(include_in_schema=False)


@router.get("/internal/signing-key", response_model=SigningKey)
async def signing_key(
    domain: Annotated[str, Query(min_length=1, max_length=253)],
    account_id: Annotated[str, Query(min_length=1, max_length=64)],
    service: SenderService,
    manager: Manager,
) -> Any:
    key = await manager.signing_key(account_id, domain)
    outcome = "missing" if key is None else "found"
    metrics.SIGNING_KEY_READS.labels(service, outcome).inc()
    log.info(
        "signing key read", extra={"caller": service, "domain": domain, "account_id": account_id, "outcome": outcome}
    )
    if key is None:
        return JSONResponse({"detail": "no verified signing key for this domain"}, status_code=404)
    return key
