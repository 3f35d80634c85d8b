"""Canned responses: prepared answers with placeholders. Agents read and use them; admins write them.

Placeholders (filled when used; an unknown one renders empty): `{{ customer.name }}`, `{{ customer.address }}`,
`{{ agent.name }}`, `{{ conversation.subject }}`, `{{ stream.address }}`, `{{ stream.name }}`.

Every create/update/delete publishes `canned_response.changed` (`mailstream_inbox.catalogue`) for automation.
"""

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mailstream_common.pages import (
    DEFAULT_LIMIT,
    CursorParam,
    LimitParam,
    Page,
    decode_optional_cursor,
    encode_optional_cursor,
)

from ... import catalogue
from ...payload_types import HeaderSafeStr
from ...placeholders import syntax_error
from ...repositories import canned_responses as canned_repo
from ...repositories import topics as topics_repo
from ...repositories import uploads as uploads_repo
from ..deps import AdminPrincipal, BrokerDep, CurrentPrincipal, Db
from ..errors import COMMON_RESPONSES, NOT_FOUND_RESPONSE, field_error, not_found

router = APIRouter(tags=["canned responses"], responses=COMMON_RESPONSES)

CannedId = Annotated[str, Path(max_length=64)]
Title = Annotated[HeaderSafeStr, Field(min_length=1, max_length=200)]
_EXAMPLE = {
    "title": "Order shipped",
    "text": "Hello {{ customer.name }},\n\nyour order has shipped.\n\n{{ agent.name }}",
    "html": "<p>Hello {{ customer.name }},</p><p>your order has shipped.</p>",
    "topic_id": None,
}


def _check_syntax(value: str | None) -> str | None:
    if value is not None and (problem := syntax_error(value)):
        raise ValueError(problem)
    return value


class CannedCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [_EXAMPLE]})
    title: Title
    text: str = Field(min_length=1, max_length=100_000)
    html: str | None = Field(default=None, max_length=500_000)
    topic_id: str | None = Field(default=None, max_length=64, description="Offer it only in this topic")
    attachment_ids: list[Annotated[str, Field(max_length=64)]] = Field(
        default_factory=list,
        max_length=10,
        description="Uploads (`POST /v1/attachments`) sent with every use of it (kept: they do not expire here)",
        examples=[["4d3c2b1a09f8e7d6c5b4a3928170f6e5"]],
    )

    _syntax = field_validator("text", "html")(_check_syntax)


class CannedUpdate(BaseModel):
    """Only the fields present change; `html` and `topic_id` may be null."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"title": "Order shipped (EU)"}]})
    title: Title | None = None
    text: str | None = Field(default=None, min_length=1, max_length=100_000)
    html: str | None = Field(default=None, max_length=500_000)
    topic_id: str | None = Field(default=None, max_length=64)
    attachment_ids: list[Annotated[str, Field(max_length=64)]] | None = Field(
        default=None,
        max_length=10,
        description="Replaces its files ([] removes them)",
        examples=[["4d3c2b1a09f8e7d6c5b4a3928170f6e5"]],
    )

    _syntax = field_validator("text", "html")(_check_syntax)

    @model_validator(mode="after")
    def _required_not_null(self) -> "CannedUpdate":
        for name in ("title", "text", "attachment_ids"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} may not be null")
        return self


class CannedAttachment(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"filename": "返品フォーム.pdf", "content_type": "application/pdf", "size": 48213}]
        }
    )
    filename: str
    content_type: str
    size: int


class CannedPublic(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "3c2b1a09f8e7d6c5b4a3928170f6e5d4",
                    **_EXAMPLE,
                    "attachments": [{"filename": "返品フォーム.pdf", "content_type": "application/pdf", "size": 48213}],
                }
            ]
        }
    )
    id: str
    title: str
    text: str
    html: str | None
    topic_id: str | None
    created_at: datetime
    updated_at: datetime
    attachments: list[CannedAttachment] = Field(default_factory=list, description="Files sent with it")


def canned_public(doc: dict) -> CannedPublic:
    return CannedPublic(
        id=doc["_id"],
        title=doc["title"],
        text=doc["text"],
        html=doc.get("html"),
        topic_id=doc.get("topic_id"),
        created_at=doc["created_at"],
        updated_at=doc["updated_at"],
        attachments=[
            CannedAttachment(filename=a["filename"], content_type=a["content_type"], size=a["size"])
            for a in doc.get("attachments", [])
        ],
    )


async def _kept_uploads(db, account_id: str, upload_ids: list[str]) -> list[dict]:
    kept = await uploads_repo.keep(db, account_id, upload_ids)
    if isinstance(kept, str):
        raise not_found("attachment")
    return kept


async def _check_topic(db, account_id: str, topic_id: str | None) -> None:
    if topic_id is not None and await topics_repo.get_topic(db, account_id, topic_id) is None:
        raise field_error(["body", "topic_id"], "no such topic")


@router.post("/v1/canned-responses", status_code=201, response_model=CannedPublic, responses=NOT_FOUND_RESPONSE)
async def create_canned_response(
    body: CannedCreate, principal: AdminPrincipal, db: Db, broker: BrokerDep
) -> CannedPublic:
    await _check_topic(db, principal.account_id, body.topic_id)
    files = await _kept_uploads(db, principal.account_id, body.attachment_ids)
    doc = await canned_repo.create(
        db, principal.account_id, title=body.title, text=body.text, html=body.html, topic_id=body.topic_id
    )
    if files:
        doc = await canned_repo.set_attachments(db, principal.account_id, doc["_id"], files) or doc
    await catalogue.publish_change(db, broker, "canned_response", doc, "created")
    return canned_public(doc)


@router.get("/v1/canned-responses", response_model=Page[CannedPublic])
async def list_canned_responses(
    principal: CurrentPrincipal,
    db: Db,
    topic_id: Annotated[str | None, Query(max_length=64)] = None,
    limit: LimitParam = DEFAULT_LIMIT,
    cursor: CursorParam = None,
) -> Page[CannedPublic]:
    docs, last = await canned_repo.list_page(
        db, principal.account_id, topic_id=topic_id, limit=limit, after=decode_optional_cursor(cursor)
    )
    return Page(items=[canned_public(d) for d in docs], next_cursor=encode_optional_cursor(last))


@router.get("/v1/canned-responses/{canned_id}", response_model=CannedPublic, responses=NOT_FOUND_RESPONSE)
async def get_canned_response(canned_id: CannedId, principal: CurrentPrincipal, db: Db) -> CannedPublic:
    doc = await canned_repo.get(db, principal.account_id, canned_id)
    if doc is None:
        raise not_found("canned response")
    return canned_public(doc)


@router.patch("/v1/canned-responses/{canned_id}", response_model=CannedPublic, responses=NOT_FOUND_RESPONSE)
async def update_canned_response(
    canned_id: CannedId, body: CannedUpdate, principal: AdminPrincipal, db: Db, broker: BrokerDep
) -> CannedPublic:
    if await canned_repo.get(db, principal.account_id, canned_id) is None:
        raise not_found("canned response")
    changes = body.model_dump(include=body.model_fields_set)
    await _check_topic(db, principal.account_id, changes.get("topic_id"))
    upload_ids = changes.pop("attachment_ids", None)
    if upload_ids is not None:
        changes["attachments"] = await _kept_uploads(db, principal.account_id, upload_ids)
    doc = await canned_repo.update(db, principal.account_id, canned_id, changes)
    if doc is None:
        raise not_found("canned response")
    await catalogue.publish_change(db, broker, "canned_response", doc, "updated")
    return canned_public(doc)


@router.delete("/v1/canned-responses/{canned_id}", status_code=204, responses=NOT_FOUND_RESPONSE)
async def delete_canned_response(canned_id: CannedId, principal: AdminPrincipal, db: Db, broker: BrokerDep) -> Response:
    doc = await canned_repo.delete(db, principal.account_id, canned_id)
    if doc is None:
        raise not_found("canned response")
    await catalogue.publish_change(db, broker, "canned_response", doc, "deleted")
    return Response(status_code=204)
