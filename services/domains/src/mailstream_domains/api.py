"""HTTP: the public domain paths (reached only through the gateway), the sender's signing-key path, and ops.

Trust (mailstream_common.service_auth): the public paths answer only the gateway's credential, which it sends with
`X-Account-Id` (the tenant) and `X-Role` after authenticating the customer's API key. The tenant comes from that
header only, so another account's domain id answers 404 exactly like a missing one. `/internal/signing-key` answers
only the sender's credential (the gateway's gets 403), and every read of a private key is logged and counted.
"""

import base64
import binascii
import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator

from mailstream_common import logs
from mailstream_common.http_apps import install_allow_header
from mailstream_common.ops import ReadinessCheck, ops_routes
from mailstream_common.service_auth import AUTH_RESPONSES, Forwarded, admin_only, forwarded_account, require_caller

from . import metrics
from .manager import DomainExists, DomainManager, RotationInProgress
from .validation import DomainNameError, validate_sending_domain

log = logging.getLogger(__name__)

Caller = Forwarded

# --- schemas ---------------------------------------------------------------------------------------------------


class DomainCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"name": "acme.com", "dkim_key_bits": 2048}, {"name": "mails.acme.com"}]},
    )

    name: str = Field(
        description="A domain or subdomain the account owns (not a free-mail domain): dot-separated labels of letters,"
        " digits and hyphens (IDNs in their xn-- form), at most 253 characters",
        min_length=1,
        max_length=253,
    )
    dkim_key_bits: Literal[1024, 2048] = Field(default=2048, description="RSA key length; 2048 is recommended")

    @field_validator("name")
    @classmethod
    def _sending_domain(cls, value: str) -> str:
        try:
            return validate_sending_domain(value)
        except DomainNameError as exc:
            raise ValueError(str(exc)) from None


class DnsRecordPublic(BaseModel):
    purpose: Literal["dkim", "spf", "dmarc"]
    type: str = Field(description="DNS record type")
    host: str = Field(description="Fully qualified name to publish the record at")
    value: str = Field(description="The value as DNS provider web forms take it (one piece)")
    zone_value: str = Field(description="The value as a zone file writes it: quoted strings of at most 255 bytes")
    status: Literal["pending", "verified", "invalid"]
    detail: str = Field(description="What the last check found and what to do about it")
    problem: str | None = Field(
        default=None,
        description="Machine-readable diagnostic: missing, timeout, servfail, wrong_value, truncated, badly_split, "
        "key_mismatch, revoked, several_records, missing_include, plus_all, lookup_limit",
    )
    checked_at: datetime | None = None
    selector: str | None = Field(default=None, description="DKIM selector")
    algorithm: str | None = Field(default=None, description="DKIM key type: rsa or ed25519")
    key_state: Literal["pending", "active", "retiring"] | None = Field(
        default=None, description="DKIM rotation role: pending (new, not signing yet), active (signs), retiring"
    )
    required: bool = Field(description="Whether the domain's status depends on this record")
    notes: list[str] = Field(default_factory=list)


class DomainPublic(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "3f0c8e4a9b7d4c2e8f1a6b5d4c3e2f10",
                    "name": "acme.com",
                    "status": "pending",
                    "dkim_key_bits": 2048,
                    "signing_selector": None,
                    "created_at": "2026-11-27T10:00:00Z",
                    "checked_at": None,
                    "next_check_at": "2026-11-27T10:05:00Z",
                    "dns_records": [
                        {
                            "purpose": "dkim",
                            "type": "TXT",
                            "host": "ms2026111._domainkey.acme.com",
                            "value": "v=DKIM1; k=rsa; p=MIIBIjANBgkqh...",
                            "zone_value": '"v=DKIM1; k=rsa; p=MIIBIjANBgkqh..." "...IDAQAB"',
                            "status": "pending",
                            "detail": "ms2026111._domainkey.acme.com does not exist (NXDOMAIN): publish ...",
                            "problem": "missing",
                            "selector": "ms2026111",
                            "algorithm": "rsa",
                            "key_state": "pending",
                            "required": True,
                            "notes": ["publish this record; signing starts once it verifies"],
                        },
                        {
                            "purpose": "spf",
                            "type": "TXT",
                            "host": "acme.com",
                            "value": "v=spf1 include:_spf.mailstream.test ~all",
                            "zone_value": '"v=spf1 include:_spf.mailstream.test ~all"',
                            "status": "pending",
                            "detail": "not checked yet: publish the record, then verify",
                            "required": True,
                        },
                    ],
                }
            ]
        }
    )

    id: str
    name: str
    status: Literal["pending", "verified", "invalid"]
    dkim_key_bits: int
    signing_selector: str | None = Field(description="Selector outgoing mail is signed with; null: not signing")
    created_at: datetime
    checked_at: datetime | None = None
    next_check_at: datetime | None = Field(default=None, description="When the automatic re-check runs")
    dns_records: list[DnsRecordPublic]


class DomainList(BaseModel):
    items: list[DomainPublic]
    next_cursor: str | None


class Ed25519Key(BaseModel):
    selector: str
    private_key_pem: str = Field(description="PKCS#8 PEM")
    private_key_b64: str = Field(
        description="The raw 32-byte key in base64, as dkimpy's ed25519-sha256 signer takes it"
    )


class SigningKey(BaseModel):
    domain: str
    selector: str
    algorithm: Literal["rsa-sha256"]
    private_key_pem: str
    ed25519: Ed25519Key | None


# --- app -------------------------------------------------------------------------------------------------------


def _encode_cursor(name: str) -> str:
    return base64.urlsafe_b64encode(name.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> str:
    try:
        return base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise HTTPException(
            422, detail=[{"type": "value_error", "loc": ["query", "cursor"], "msg": "invalid cursor", "input": cursor}]
        ) from None


def create_app(
    manager: DomainManager, service_callers: Mapping[str, str], checks: Mapping[str, ReadinessCheck]
) -> FastAPI:
    """`service_callers`: caller name -> SHA-256 of its token (`CommonSettings.service_callers`)."""
    app = FastAPI(
        title="Mailstream domains",
        version="1",
        description="Sending domains: DKIM keys, the SPF/DKIM/DMARC records to publish and their live verification.",
    )
    app.state.service_callers = dict(service_callers)
    install_allow_header(app)

    @app.middleware("http")
    async def correlation(request: Request, call_next: Any) -> Response:
        cid = request.headers.get("x-correlation-id") or logs.new_correlation_id()
        token = logs.correlation_id.set(cid)
        try:
            response = await call_next(request)
        finally:
            logs.correlation_id.reset(token)
        response.headers["X-Correlation-Id"] = cid
        return response

    caller = forwarded_account
    admin = admin_only("only admin keys may change sending domains")

    not_found = {**AUTH_RESPONSES, 404: {"description": "No such domain in this account"}}

    @app.post(
        "/v1/domains",
        status_code=201,
        response_model=DomainPublic,
        tags=["domains"],
        responses={**AUTH_RESPONSES, 409: {"description": "Already a sending domain of this account"}},
    )
    async def create_domain(body: DomainCreate, who: Annotated[Caller, Depends(admin)]) -> dict[str, Any]:
        """Add a sending domain: generates its DKIM key and lists the DNS records to publish."""
        try:
            return await manager.create(who.account_id, body.name, body.dkim_key_bits)
        except DomainExists:
            raise HTTPException(409, f"{body.name} is already a sending domain of this account") from None

    @app.get("/v1/domains", response_model=DomainList, tags=["domains"], responses=AUTH_RESPONSES)
    async def list_domains(
        who: Annotated[Caller, Depends(caller)],
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
        cursor: Annotated[
            str | None,
            Query(
                max_length=400,
                pattern=r"^[A-Za-z0-9_-]+$",
                description="`next_cursor` of the previous page (opaque, url-safe base64); omit for the first page",
            ),
        ] = None,
    ) -> dict[str, Any]:
        after = _decode_cursor(cursor) if cursor else None
        items = await manager.list_for(who.account_id, after_name=after, limit=limit + 1)
        more = len(items) > limit
        items = items[:limit]
        return {"items": items, "next_cursor": _encode_cursor(items[-1]["name"]) if more else None}

    @app.get("/v1/domains/{domain_id}", response_model=DomainPublic, tags=["domains"], responses=not_found)
    async def get_domain(domain_id: str, who: Annotated[Caller, Depends(caller)]) -> dict[str, Any]:
        """The records to publish with the result of the last check."""
        return _found(await manager.get(who.account_id, domain_id))

    @app.post("/v1/domains/{domain_id}/verify", response_model=DomainPublic, tags=["domains"], responses=not_found)
    async def verify_domain(domain_id: str, who: Annotated[Caller, Depends(admin)]) -> dict[str, Any]:
        """Look every record up now and report per-record status and diagnostics."""
        return _found(await manager.verify(who.account_id, domain_id))

    @app.post(
        "/v1/domains/{domain_id}/dkim/rotate",
        response_model=DomainPublic,
        tags=["domains"],
        responses={**not_found, 409: {"description": "A rotation is already waiting for its DNS record"}},
    )
    async def rotate_key(domain_id: str, who: Annotated[Caller, Depends(admin)]) -> dict[str, Any]:
        """Create a new DKIM key under a new selector; signing switches to it once its record verifies, and the
        old record is shown as retiring until its grace period ends."""
        try:
            return _found(await manager.rotate(who.account_id, domain_id))
        except RotationInProgress as exc:
            raise HTTPException(409, str(exc)) from None

    @app.delete("/v1/domains/{domain_id}", status_code=204, tags=["domains"], responses=not_found)
    async def delete_domain(domain_id: str, who: Annotated[Caller, Depends(admin)]) -> Response:
        if not await manager.delete(who.account_id, domain_id):
            raise HTTPException(404, "domain not found")
        return Response(status_code=204)

    @app.get("/internal/signing-key", response_model=SigningKey, include_in_schema=False)
    async def signing_key(
        domain: Annotated[str, Query(min_length=1, max_length=253)],
        account_id: Annotated[str, Query(min_length=1, max_length=64)],
        service: Annotated[str, Depends(require_caller("sender"))],
    ) -> Any:
        # Internal only: the gateway neither forwards this path nor holds a credential it accepts; the account is
        # the one the sender's reply belongs to. Who read which key is logged (never the key) and counted.
        key = await manager.signing_key(account_id, domain)
        outcome = "missing" if key is None else "found"
        metrics.SIGNING_KEY_READS.labels(service, outcome).inc()
        log.info(
            "signing key read",
            extra={"caller": service, "domain": domain, "account_id": account_id, "outcome": outcome},
        )
        if key is None:
            return JSONResponse({"detail": "no verified signing key for this domain"}, status_code=404)
        return key

    app.router.routes.extend(ops_routes(checks))
    return app


def _found(value: dict[str, Any] | None) -> dict[str, Any]:
    if value is None:
        raise HTTPException(404, "domain not found")
    return value
