"""The account email template (applied to outgoing mail by default) and per-stream (brand) overrides.

Each part must contain `{{ content }}` (where the reply goes); other placeholders are those of canned responses
(`{{ customer.name }}`, `{{ agent.name }}`, `{{ stream.address }}`...). A stream override may replace the template,
add a signature (appended below every reply's content), or both; what it leaves out falls back to the account's.
"""

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ...html_sanitizer import sanitize_html
from ...placeholders import CONTENT_PLACEHOLDER, apply_template, syntax_error
from ...reply_builder import DEFAULT_TEMPLATE
from ...repositories import streams as streams_repo
from ...repositories import templates as templates_repo
from ...use_cases.send_reply import effective_template
from ..deps import AdminPrincipal, CurrentPrincipal, Db
from ..errors import COMMON_RESPONSES, NOT_FOUND_RESPONSE, not_found

router = APIRouter(tags=["email template"], responses=COMMON_RESPONSES)

StreamId = Annotated[str, Path(max_length=64)]
_EXAMPLE = {
    "html": '<html><body><div style="font-family: sans-serif">{{ content }}</div>'
    '<p style="color: #888">Acme Inc. · {{ stream.address }}</p></body></html>',
    "text": "{{ content }}\n\n--\nAcme Inc.",
}


def _template_part(value: str | None) -> str | None:
    if value is None:
        return value
    if not CONTENT_PLACEHOLDER.search(value):
        raise ValueError("must contain {{ content }}")
    if problem := syntax_error(value):
        raise ValueError(problem)
    return value


class EmailTemplateBody(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [_EXAMPLE]})
    html: str = Field(max_length=200_000)
    text: str = Field(max_length=50_000)

    _parts = field_validator("html", "text")(_template_part)


class EmailTemplatePublic(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{**_EXAMPLE, "is_default": False}]})
    html: str
    text: str
    is_default: bool = Field(description="True until an admin saved a template of their own")
    updated_at: datetime | None = None


class PreviewRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"text": "Hello Ann,\n\nyour parcel is on its way."}]}
    )
    text: str = Field(max_length=1_000_000)
    html: str | None = Field(default=None, max_length=2_000_000)
    stream_id: str | None = Field(default=None, max_length=64, description="Preview with this stream's override")


class PreviewResult(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"html": "<html>...Hello Ann,<br>...</html>", "text": "Hello Ann,..."}]}
    )
    html: str
    text: str


class StreamTemplateBody(BaseModel):
    """`html` and `text` together replace the account template for this stream; `signature` alone is fine too."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{**_EXAMPLE, "signature": "Acme Support\nhttps://acme.com/help"}]},
    )
    html: str | None = Field(default=None, max_length=200_000)
    text: str | None = Field(default=None, max_length=50_000)
    signature: str | None = Field(default=None, max_length=10_000)

    _parts = field_validator("html", "text")(_template_part)

    @model_validator(mode="after")
    def _both_or_neither(self) -> "StreamTemplateBody":
        if (self.html is None) != (self.text is None):
            raise ValueError("give html and text together (or neither, to keep the account template)")
        if self.signature is not None and (problem := syntax_error(self.signature)):
            raise ValueError(f"signature: {problem}")
        return self


class StreamTemplatePublic(BaseModel):
    stream_id: str
    html: str | None
    text: str | None
    signature: str | None
    effective: EmailTemplateBody = Field(description="What replies from this stream are wrapped in")


def _public(doc: dict | None) -> EmailTemplatePublic:
    if doc is None:
        return EmailTemplatePublic(html=DEFAULT_TEMPLATE.html, text=DEFAULT_TEMPLATE.text, is_default=True)
    return EmailTemplatePublic(html=doc["html"], text=doc["text"], is_default=False, updated_at=doc.get("updated_at"))


@router.get("/v1/email-template", response_model=EmailTemplatePublic)
async def get_email_template(principal: CurrentPrincipal, db: Db) -> EmailTemplatePublic:
    return _public(await templates_repo.get(db, principal.account_id))


@router.put("/v1/email-template", response_model=EmailTemplatePublic)
async def put_email_template(body: EmailTemplateBody, principal: AdminPrincipal, db: Db) -> EmailTemplatePublic:
    return _public(await templates_repo.put(db, principal.account_id, {"html": body.html, "text": body.text}))


@router.post(
    "/v1/email-template/preview",
    response_model=PreviewResult,
    responses={404: {"description": "`stream_id` is not a stream of this account"}},
)
async def preview_email_template(body: PreviewRequest, principal: CurrentPrincipal, db: Db) -> PreviewResult:
    """The template applied to `text` (and `html`), as a customer would receive it."""
    stream = {}
    if body.stream_id:
        stream = await streams_repo.get_stream(db, principal.account_id, body.stream_id)
        if stream is None:
            raise not_found("stream")
    template = await effective_template(db, principal.account_id, stream)
    content_html = sanitize_html(body.html, allow_remote_images=True).html if body.html is not None else None
    html, text = apply_template(template.html, template.text, body.text, content_html)
    return PreviewResult(html=html, text=text)


async def _stream_template(db, account_id: str, stream: dict) -> StreamTemplatePublic:
    template = stream.get("template") or {}
    effective = await effective_template(db, account_id, stream)
    return StreamTemplatePublic(
        stream_id=stream["_id"],
        html=template.get("html"),
        text=template.get("text"),
        signature=stream.get("signature"),
        effective=EmailTemplateBody.model_construct(html=effective.html, text=effective.text),
    )


@router.get("/v1/streams/{stream_id}/email-template", response_model=StreamTemplatePublic, responses=NOT_FOUND_RESPONSE)
async def get_stream_template(stream_id: StreamId, principal: CurrentPrincipal, db: Db) -> StreamTemplatePublic:
    stream = await streams_repo.get_stream(db, principal.account_id, stream_id)
    if stream is None:
        raise not_found("stream")
    return await _stream_template(db, principal.account_id, stream)


@router.put("/v1/streams/{stream_id}/email-template", response_model=StreamTemplatePublic, responses=NOT_FOUND_RESPONSE)
async def put_stream_template(
    stream_id: StreamId, body: StreamTemplateBody, principal: AdminPrincipal, db: Db
) -> StreamTemplatePublic:
    if await streams_repo.get_stream(db, principal.account_id, stream_id) is None:
        raise not_found("stream")
    template = {"html": body.html, "text": body.text} if body.html is not None else None
    stream = await streams_repo.update_stream(
        db, principal.account_id, stream_id, {"template": template, "signature": body.signature}
    )
    if stream is None:
        raise not_found("stream")
    return await _stream_template(db, principal.account_id, stream)


@router.delete("/v1/streams/{stream_id}/email-template", status_code=204, responses=NOT_FOUND_RESPONSE)
async def delete_stream_template(stream_id: StreamId, principal: AdminPrincipal, db: Db) -> Response:
    """Remove the stream's template and signature: its replies use the account template again."""
    if await streams_repo.get_stream(db, principal.account_id, stream_id) is None:
        raise not_found("stream")
    await streams_repo.update_stream(db, principal.account_id, stream_id, {"template": None, "signature": None})
    return Response(status_code=204)
