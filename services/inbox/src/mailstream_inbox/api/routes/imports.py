"""History import of one mail over the API: the same quiet path as `mailstream import` (see `history_import`)."""

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, ConfigDict, Field

from mailstream_common.contracts import utcnow

from ... import history_import
from ...repositories import streams as streams_repo
from ..deps import AdminPrincipal, BrokerDep, Db
from ..errors import COMMON_RESPONSES, NOT_FOUND_RESPONSE, field_error, not_found

router = APIRouter(tags=["topics and streams"], responses=COMMON_RESPONSES)

StreamId = Annotated[str, Path(max_length=64)]

_EML_EXAMPLE = (
    "From: Ann Customer <ann@example.net>\r\nTo: support@acme.com\r\nSubject: Where is my order #1234?\r\n"
    "Date: Tue, 03 Mar 2026 09:30:00 +0000\r\nMessage-ID: <CAF1234@mail.example.net>\r\n\r\nHello...\r\n"
)


class ImportQueued(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"mail_id": "0f3a5c7e9b1d2f4a6c8e0a2b4c6d8e0f", "status": "queued"},
                {"mail_id": "0f3a5c7e9b1d2f4a6c8e0a2b4c6d8e0f", "status": "already_imported"},
            ]
        }
    )
    mail_id: str = Field(description="Ingest's id for the mail; the same for the same bytes in the same stream")
    status: Literal["queued", "already_imported"] = Field(
        description="'already_imported': the stream holds a mail with this Message-ID, nothing changes"
    )


@router.post(
    "/v1/streams/{stream_id}/import",
    status_code=202,
    response_model=ImportQueued,
    responses=NOT_FOUND_RESPONSE,
    summary="Import one old mail (.eml) into a stream, quietly",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "message/rfc822": {"schema": {"type": "string", "format": "binary"}},
                # The example sits on the generic type: OpenAPI tools (schemathesis) cannot serialise message/rfc822.
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}, "example": _EML_EXAMPLE},
            },
        }
    },
)
async def import_mail(stream_id: StreamId, request: Request, principal: AdminPrincipal, db: Db, broker: BrokerDep):
    """The mail is threaded like live mail, but imported: no automation rule runs, no auto-reply, and live clients
    get `message.imported` (to coalesce). Idempotent by Message-ID: importing it again changes nothing."""
    stream = await streams_repo.get_stream(db, principal.account_id, stream_id)
    if stream is None:
        raise not_found("stream")
    raw = await request.body()
    if not raw.strip():
        raise field_error(["body"], "the body must be one message (message/rfc822)")
    try:
        status, mail_id = await history_import.import_one(db, broker, stream, raw, utcnow())
    except history_import.HistoryImportError as exc:
        raise field_error(["body"], str(exc)) from exc
    return ImportQueued(mail_id=mail_id, status=status)  # type: ignore[arg-type]
