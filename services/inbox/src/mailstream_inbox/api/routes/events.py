"""`GET /v1/events`: Server-Sent Events for the key's account (message received/sent, delivery, conversation).

Events come from this process's live hub (see `live.py`). A comment line is sent every `INBOX_SSE_KEEPALIVE_SECONDS`
so proxies keep the connection open; a disconnected client is noticed within a second and unsubscribed.
"""

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from ...live import LiveHub
from ...security import issue_ticket
from ..deps import CurrentPrincipal, Principal, SettingsDep, get_principal_or_ticket
from ..errors import AUTH_RESPONSES

router = APIRouter(tags=["live updates"], responses=AUTH_RESPONSES)

POLL_SECONDS = 1.0
RECONNECT_MILLISECONDS = 3000

SSE_DESCRIPTION = """A `text/event-stream` of the account's live events. Event names:

- `message.received` / `message.sent`: `{"conversation_id", "message_id", "stream_id", "topic_id", "direction",
  "is_first_message", "subject", "from", "received_at"}`
- `message.delivery_changed`: `{"conversation_id", "message_id", "status": "queued"|"sent"|"failed", "detail"}`
- `conversation.changed`: `{"conversation_id", "status", "tags", "assignee", "priority", "changed_by"}`

Each event has an `id:`; lines starting with `:` are keep-alive comments.

Authenticate with the `Authorization` header or, from a browser's `EventSource` (which cannot send headers), with
`?ticket=` from `POST /v1/events/tickets` (valid for a minute, to open the stream).
"""


class EventsTicket(BaseModel):
    ticket: str
    expires_at: datetime
    url: str


async def event_stream(request: Request, hub: LiveHub, account_id: str, keepalive: float) -> AsyncIterator[str]:
    with hub.subscribe(account_id) as subscription:
        yield f"retry: {RECONNECT_MILLISECONDS}\n: connected\n\n"
        last_sent = time.monotonic()
        while True:
            try:
                event = await subscription.next(timeout=POLL_SECONDS)
            except EOFError:
                return
            if event is not None:
                yield event.encode()
                last_sent = time.monotonic()
                continue
            if await request.is_disconnected():
                return
            if time.monotonic() - last_sent >= keepalive:
                yield ": keep-alive\n\n"
                last_sent = time.monotonic()


@router.get(
    "/v1/events",
    summary="Live updates as Server-Sent Events",
    description=SSE_DESCRIPTION,
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "The event stream"},
        429: {"description": "The account has too many open event streams on this replica"},
    },
)
async def live_events(
    request: Request, principal: Annotated[Principal, Depends(get_principal_or_ticket)], settings: SettingsDep
) -> StreamingResponse:
    hub: LiveHub = request.app.state.live
    if not hub.has_room(principal.account_id):
        raise HTTPException(429, detail="too many open event streams for this account", headers={"Retry-After": "10"})
    return StreamingResponse(
        event_stream(request, hub, principal.account_id, settings.sse_keepalive_seconds),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.post(
    "/v1/events/tickets",
    status_code=201,
    response_model=EventsTicket,
    summary="A one-minute ticket to open the event stream without an Authorization header (EventSource)",
)
async def create_events_ticket(principal: CurrentPrincipal, settings: SettingsDep) -> EventsTicket:
    ticket, expires = issue_ticket(principal, settings.internal_token.get_secret_value())
    return EventsTicket(
        ticket=ticket, expires_at=datetime.fromtimestamp(expires, UTC), url=f"/v1/events?ticket={ticket}"
    )
