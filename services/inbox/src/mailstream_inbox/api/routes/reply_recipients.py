"""Who a reply would go to, before it is written: each default recipient marked when it is on the suppression list
(the sender owns the list; `suppression_lookup` asks it), so an agent sees it before sending, not after."""

from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from ...repositories import conversations as conversations_repo
from ...repositories import streams as streams_repo
from ...use_cases import conversation_moves
from ...use_cases.send_reply import ReplyRequest, choose_recipients
from ..deps import CurrentPrincipal, Db, SettingsDep
from ..errors import COMMON_RESPONSES, NOT_FOUND_RESPONSE, not_found
from .conversations import ConversationId, suppression_lookup

router = APIRouter(tags=["conversations"], responses=COMMON_RESPONSES)


class RecipientPreview(BaseModel):
    name: str = ""
    address: str
    field: Literal["to", "cc"]
    suppressed: bool | None = Field(description="On the account's suppression list; null: the check did not answer")
    suppression_reason: str | None = None


class ReplyRecipientsPreview(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "recipients": [
                        {
                            "name": "Ann Customer",
                            "address": "ann@example.net",
                            "field": "to",
                            "suppressed": True,
                            "suppression_reason": "3 hard bounces: 550 5.1.1 User unknown",
                        },
                        {"name": "", "address": "carl@example.com", "field": "cc", "suppressed": False},
                    ]
                }
            ]
        }
    )
    recipients: list[RecipientPreview]


@router.get(
    "/v1/conversations/{conversation_id}/reply-recipients",
    response_model=ReplyRecipientsPreview,
    responses=NOT_FOUND_RESPONSE,
    summary="Who a reply would go to, and which of them are suppressed",
)
async def reply_recipients(
    conversation_id: ConversationId, principal: CurrentPrincipal, db: Db, settings: SettingsDep, request: Request
) -> ReplyRecipientsPreview:
    """The default recipients of `POST .../replies` (reply-all to the last inbound mail, the customer always on
    To), each with `suppressed`: a reply to a suppressed address is refused (`on_suppressed: refuse`) or fails as
    `suppressed`."""
    conversation = await conversations_repo.get(db, principal.account_id, conversation_id)
    if conversation is None:
        raise not_found("conversation")
    conversation = await conversation_moves.resolve(db, principal.account_id, conversation)
    stream = await streams_repo.get_stream(db, principal.account_id, conversation["stream_id"]) or {}
    chosen, _ = await choose_recipients(
        db, conversation, stream, ReplyRequest(requested_by=principal.actor, reply_all=True)
    )
    answer = await suppression_lookup(request, settings).check(principal.account_id, chosen.addresses())
    previews = []
    for field, mailboxes in (("to", chosen.to), ("cc", chosen.cc)):
        for mailbox in mailboxes:
            address = mailbox["address"].lower()
            reason = answer.suppressed.get(address)
            previews.append(
                RecipientPreview(
                    name=mailbox.get("name", ""),
                    address=mailbox["address"],
                    field=field,
                    suppressed=None if address in answer.unknown else reason is not None,
                    suppression_reason=reason,
                )
            )
    return ReplyRecipientsPreview(recipients=previews)
