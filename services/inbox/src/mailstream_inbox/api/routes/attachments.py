"""Uploads: files an agent attaches to replies and canned responses (`attachment_ids`).

An upload lives 24 hours unless something references it (then its bytes are kept with that reply or canned
response). The content type is sniffed from the bytes; the client's claim is recorded, never used.
"""

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, File, Form, UploadFile
from pydantic import BaseModel, ConfigDict, Field

from ...attachment_rules import attachment_limit, clean_filename, sniff_content_type
from ...repositories import accounts as accounts_repo
from ...repositories import uploads as uploads_repo
from ..deps import CurrentPrincipal, Db, SettingsDep
from ..errors import COMMON_RESPONSES, field_error

router = APIRouter(tags=["messages"], responses=COMMON_RESPONSES)


class UploadPublic(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "4d3c2b1a09f8e7d6c5b4a3928170f6e5",
                    "filename": "請求書.pdf",
                    "content_type": "application/pdf",
                    "declared_content_type": "application/octet-stream",
                    "size": 48213,
                    "expires_at": "2026-11-28T09:30:00Z",
                }
            ]
        }
    )
    id: str = Field(description="Reference it in a reply's or canned response's `attachment_ids`")
    filename: str = Field(description="As uploaded (path removed, control characters dropped); any script")
    content_type: str = Field(description="Sniffed from the bytes; this is what the mail will say")
    declared_content_type: str | None = Field(description="What the client claimed (not trusted)")
    size: int
    expires_at: datetime = Field(description="Unreferenced uploads are deleted then")


@router.post(
    "/v1/attachments",
    status_code=201,
    response_model=UploadPublic,
    responses={413: {"description": "Larger than the account's attachment limit"}},
    summary="Upload a file to attach to a reply or a canned response",
)
async def upload_attachment(
    principal: CurrentPrincipal,
    db: Db,
    settings: SettingsDep,
    file: Annotated[UploadFile, File(description="The file (multipart/form-data)")],
    filename: Annotated[
        str | None, Form(max_length=1000, description="Overrides the part's file name (e.g. for non-ASCII names)")
    ] = None,
) -> UploadPublic:
    account = await accounts_repo.get_account(db, principal.account_id)
    limit = attachment_limit(account, settings.attachment_max_bytes)
    data = await file.read(limit + 1)
    if len(data) > limit:
        raise field_error(["body", "file"], f"the file is larger than the account's limit of {limit} bytes", 413)
    name = clean_filename(filename or file.filename)
    if name is None:
        raise field_error(["body", "filename"], "a file name is required")
    doc = await uploads_repo.create(
        db,
        principal.account_id,
        filename=name,
        content_type=sniff_content_type(data),
        declared_content_type=file.content_type,
        data=data,
    )
    return UploadPublic(
        id=doc["_id"],
        filename=doc["filename"],
        content_type=doc["content_type"],
        declared_content_type=doc["declared_content_type"],
        size=doc["size"],
        expires_at=doc["expires_at"],
    )
