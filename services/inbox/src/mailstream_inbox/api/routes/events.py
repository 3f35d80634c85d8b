"""`GET /v1/events`: Server-Sent Events for the key's account (message received/sent, delivery, conversation).

Events come from this process's live hub (see `live.py`). A comment line is sent every `INBOX_SSE_KEEPALIVE_SECONDS`
so proxies keep the connection open; a disconnected client is noticed within a second and unsubscribed.
"""

import time
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from ...live import LiveHub
from ..deps import CurrentPrincipal, SettingsDep
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
"""


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
    responses={200: {"content": {"text/event-stream": {}}, "description": "The event stream"}},
)
async def live_events(request: Request, principal: CurrentPrincipal, settings: SettingsDep) -> StreamingResponse:
    return StreamingResponse(
        event_stream(request, request.app.state.live, principal.account_id, settings.sse_keepalive_seconds),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
