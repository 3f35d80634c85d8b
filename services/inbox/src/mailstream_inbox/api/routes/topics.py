"""Topics: named groups of streams (a brand, a department). Admins manage them; agents may read them.

Every create/rename/delete publishes `topic.changed` (`mailstream_inbox.catalogue`) for automation's projection.
"""

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Response
from pydantic import BaseModel, ConfigDict, Field

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
from ...repositories import streams as streams_repo
from ...repositories import topics as topics_repo
from ..deps import AdminPrincipal, BrokerDep, CurrentPrincipal, Db
from ..errors import COMMON_RESPONSES, NOT_FOUND_RESPONSE, conflict, not_found

router = APIRouter(tags=["topics and streams"], responses=COMMON_RESPONSES)

TopicId = Annotated[str, Path(max_length=64)]
TopicName = Annotated[HeaderSafeStr, Field(min_length=1, max_length=200)]


class TopicCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"name": "Acme support"}]})
    name: TopicName


class TopicUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"name": "Acme customer care"}]})
    name: TopicName


class TopicPublic(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"id": "3f1c2b7a9e0d4c6b8a5f4e3d2c1b0a99", "name": "Acme support", "created_at": "2026-11-27T01:00:00Z"}
            ]
        }
    )

    id: str
    name: str
    created_at: datetime


def to_public(doc: dict) -> TopicPublic:
    return TopicPublic(id=doc["_id"], name=doc["name"], created_at=doc["created_at"])


@router.post("/v1/topics", status_code=201, response_model=TopicPublic, summary="Create a topic (admin)")
async def create_topic(body: TopicCreate, principal: AdminPrincipal, db: Db, broker: BrokerDep) -> TopicPublic:
    doc = await topics_repo.create_topic(db, principal.account_id, body.name)
    await catalogue.publish_change(db, broker, "topic", doc, "created")
    return to_public(doc)


@router.get("/v1/topics", response_model=Page[TopicPublic])
async def list_topics(
    principal: CurrentPrincipal, db: Db, limit: LimitParam = DEFAULT_LIMIT, cursor: CursorParam = None
) -> Page[TopicPublic]:
    docs, next_values = await topics_repo.list_topics(
        db, principal.account_id, limit=limit, after=decode_optional_cursor(cursor)
    )
    return Page(items=[to_public(d) for d in docs], next_cursor=encode_optional_cursor(next_values))


@router.get("/v1/topics/{topic_id}", response_model=TopicPublic, responses=NOT_FOUND_RESPONSE)
async def get_topic(topic_id: TopicId, principal: CurrentPrincipal, db: Db) -> TopicPublic:
    doc = await topics_repo.get_topic(db, principal.account_id, topic_id)
    if doc is None:
        raise not_found("topic")
    return to_public(doc)


@router.patch("/v1/topics/{topic_id}", response_model=TopicPublic, responses=NOT_FOUND_RESPONSE)
async def rename_topic(
    topic_id: TopicId, body: TopicUpdate, principal: AdminPrincipal, db: Db, broker: BrokerDep
) -> TopicPublic:
    doc = await topics_repo.rename_topic(db, principal.account_id, topic_id, body.name)
    if doc is None:
        raise not_found("topic")
    await catalogue.publish_change(db, broker, "topic", doc, "updated")
    return to_public(doc)


@router.delete(
    "/v1/topics/{topic_id}",
    status_code=204,
    responses={**NOT_FOUND_RESPONSE, 409: {"description": "The topic still has streams; delete them first"}},
)
async def delete_topic(topic_id: TopicId, principal: AdminPrincipal, db: Db, broker: BrokerDep) -> Response:
    if await topics_repo.get_topic(db, principal.account_id, topic_id) is None:
        raise not_found("topic")
    if await streams_repo.count_live_streams_of_topic(db, principal.account_id, topic_id):
        raise conflict("the topic still has streams; delete them first")
    doc = await topics_repo.delete_topic(db, principal.account_id, topic_id)
    if doc is None:
        raise not_found("topic")
    await catalogue.publish_change(db, broker, "topic", doc, "deleted")
    return Response(status_code=204)
