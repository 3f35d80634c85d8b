"""Data requests (GDPR Art. 17 erasure and Art. 20 export, issue 17) and the account's retention window. Admin only.

The rules live in `use_cases/data_requests.py`; these routes translate between HTTP and it.
"""

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Response
from pydantic import BaseModel, ConfigDict, Field

from mailstream_common.contracts import ERASING_SERVICES
from mailstream_common.pages import (
    DEFAULT_LIMIT,
    CursorParam,
    LimitParam,
    Page,
    decode_optional_cursor,
    encode_optional_cursor,
)

from ...payload_types import EmailAddressStr
from ...repositories import data_requests as requests_repo
from ...use_cases import data_requests
from ..deps import AdminPrincipal, BrokerDep, Db, SettingsDep
from ..errors import COMMON_RESPONSES, NOT_FOUND_RESPONSE, not_found

router = APIRouter(tags=["data protection"], responses=COMMON_RESPONSES)

RequestId = Annotated[str, Path(max_length=64)]
EXAMPLE_ID = "9b2f6c1d8e3a4f5b9c0d1e2f3a4b5c6d"


class DataRequestCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"type": "erase", "address": "ann@example.org"},
                {"type": "erase", "address": "ann@example.org", "keep_suppression": True},
                {"type": "export", "address": "ann@example.org"},
            ]
        },
    )

    type: Literal["erase", "export"] = Field(
        description="`erase`: remove everything every service keeps about the address; `export`: one archive of it"
    )
    address: EmailAddressStr = Field(description="The person's address (compared case-insensitively)")
    keep_suppression: bool = Field(
        default=False,
        description="Erase only: keep the address on the suppression list as a keyed hash, so it still gets no mail",
    )


class ArchivePublic(BaseModel):
    state: Literal["ready", "downloaded", "expired"]
    size: int = Field(description="Bytes of the zip file (messages.mbox + records.json)")
    expires_at: datetime
    download_url: str | None = Field(default=None, description="While ready: GET it once (admin) to download")


class ServiceProgress(BaseModel):
    service: str
    status: Literal["pending", "done"]
    counts: dict[str, int] = Field(default_factory=dict, description="What the service removed, by kind of record")
    at: datetime | None = None


class DataRequestPublic(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": EXAMPLE_ID,
                    "type": "erase",
                    "status": "done",
                    "address_domain": "example.org",
                    "keep_suppression": False,
                    "services": [
                        {"service": "ingest", "status": "done", "counts": {}, "at": "2026-12-05T03:00:02Z"},
                        {
                            "service": "inbox",
                            "status": "done",
                            "counts": {"messages": 3, "conversations_deleted": 1, "blobs": 3},
                            "at": "2026-12-05T03:00:02Z",
                        },
                        {
                            "service": "automation",
                            "status": "done",
                            "counts": {"runs": 1},
                            "at": "2026-12-05T03:00:02Z",
                        },
                        {
                            "service": "sender",
                            "status": "done",
                            "counts": {"deliveries": 2, "signed_mails": 2, "suppressions": 0},
                            "at": "2026-12-05T03:00:02Z",
                        },
                        {"service": "domains", "status": "done", "counts": {}, "at": "2026-12-05T03:00:02Z"},
                    ],
                    "created_at": "2026-12-05T03:00:01Z",
                    "finished_at": "2026-12-05T03:00:02Z",
                }
            ]
        }
    )

    id: str
    type: Literal["erase", "export", "retention"]
    status: Literal["running", "done"]
    address_domain: str | None = Field(default=None, description="Only the domain: a request never shows the address")
    keep_suppression: bool = False
    services: list[ServiceProgress] = Field(description="Each service's part: pending until it reports")
    archive: ArchivePublic | None = Field(default=None, description="Export only, once it is done")
    created_at: datetime
    finished_at: datetime | None = None


def archive_of(doc: dict[str, Any]) -> ArchivePublic | None:
    archive = doc.get("archive")
    if not archive:
        return None
    expires_at = archive["expires_at"]
    if expires_at.tzinfo is None:
        expires_at = expires_at.replace(tzinfo=UTC)
    state = archive["state"]
    if state == "ready" and expires_at <= datetime.now(UTC):
        state = "expired"
    url = f"/v1/data-requests/{doc['_id']}/archive" if state == "ready" else None
    return ArchivePublic(state=state, size=archive["size"], expires_at=expires_at, download_url=url)


def to_public(doc: dict[str, Any]) -> DataRequestPublic:
    parts = doc.get("parts") or {}
    return DataRequestPublic(
        id=doc["_id"],
        type=doc["type"],
        status=doc["status"],
        address_domain=doc.get("address_domain"),
        keep_suppression=doc.get("keep_suppression", False),
        services=[
            ServiceProgress(
                service=service,
                status=parts.get(service, {}).get("status", "pending"),
                counts=parts.get(service, {}).get("counts", {}),
                at=parts.get(service, {}).get("at"),
            )
            for service in ERASING_SERVICES
        ],
        archive=archive_of(doc),
        created_at=doc["created_at"],
        finished_at=doc.get("finished_at"),
    )


@router.post(
    "/v1/data-requests",
    status_code=201,
    response_model=DataRequestPublic,
    summary="Erase a person everywhere (admin)",
    responses={
        200: {"description": "An erasure of this address is running already: that one", "model": DataRequestPublic}
    },
)
async def create_data_request(
    body: DataRequestCreate,
    principal: AdminPrincipal,
    db: Db,
    broker: BrokerDep,
    settings: SettingsDep,
    response: Response,
) -> DataRequestPublic:
    doc, created = await data_requests.start_request(
        db,
        broker,
        principal.account_id,
        body.type,
        body.address,
        keep_suppression=body.keep_suppression,
        secret=data_requests.hash_secret(settings),
    )
    if not created:
        response.status_code = 200
    return to_public(doc)


@router.get("/v1/data-requests", response_model=Page[DataRequestPublic], summary="Data requests, newest first (admin)")
async def list_data_requests(
    principal: AdminPrincipal, db: Db, limit: LimitParam = DEFAULT_LIMIT, cursor: CursorParam = None
) -> Page[DataRequestPublic]:
    docs, next_values = await requests_repo.page(
        db, principal.account_id, limit=limit, after=decode_optional_cursor(cursor)
    )
    return Page(items=[to_public(d) for d in docs], next_cursor=encode_optional_cursor(next_values))


@router.get("/v1/data-requests/{request_id}", response_model=DataRequestPublic, responses=NOT_FOUND_RESPONSE)
async def get_data_request(request_id: RequestId, principal: AdminPrincipal, db: Db) -> DataRequestPublic:
    doc = await requests_repo.get(db, principal.account_id, request_id)
    if doc is None:
        raise not_found("data request")
    return to_public(doc)


@router.get(
    "/v1/data-requests/{request_id}/archive",
    summary="Download an export's archive, once (admin)",
    response_class=Response,
    responses={
        **NOT_FOUND_RESPONSE,
        200: {"content": {"application/zip": {}}, "description": "messages.mbox and records.json"},
        409: {"description": "The export is still running"},
        410: {"description": "Downloaded already, or expired"},
    },
)
async def download_archive(request_id: RequestId, principal: AdminPrincipal, db: Db) -> Response:
    outcome, data = await data_requests.take_archive(db, principal.account_id, request_id)
    if outcome == "missing":
        raise not_found("export")
    if outcome == "not_ready":
        raise HTTPException(409, detail="the export is still running: its archive is not ready yet")
    if data is None:
        raise HTTPException(410, detail="this archive was downloaded already or has expired")
    return Response(
        data,
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="data-request-{request_id}.zip"'},
    )


class Retention(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"messages_days": 365}, {"messages_days": None}]}
    )

    messages_days: int | None = Field(
        ge=1,
        le=36500,
        description="Conversations without a message for this many days are erased everywhere; null keeps them",
    )


@router.put("/v1/retention", response_model=Retention, summary="Set the account's retention window (admin)")
async def put_retention(body: Retention, principal: AdminPrincipal, db: Db) -> Retention:
    await requests_repo.set_retention(db, principal.account_id, body.messages_days)
    return body


@router.get("/v1/retention", response_model=Retention, summary="The account's retention window (admin)")
async def get_retention(principal: AdminPrincipal, db: Db) -> Retention:
    account = await requests_repo.get_retention(db, principal.account_id)
    return Retention(messages_days=account)
