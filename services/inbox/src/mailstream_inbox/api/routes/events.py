"""`GET /v1/events`: Server-Sent Events for the key's account (message received/sent, delivery, conversation).

Events come from this process's live hub (see `live.py`). A comment line is sent every `INBOX_SSE_KEEPALIVE_SECONDS`
so proxies keep the connection open; a disconnected client is noticed within a second and unsubscribed.

Reconnecting with `Last-Event-ID` replays what the client missed from the journal (`live_journal.py`). The order
makes the seam exact: subscribe first (live events from now on are buffered), then read the journal (everything
journaled before, which is everything published to clients before), send that, then the buffered and later live
events except those the replay already sent (same broker event) or the client had (key not after its cursor).
"""

import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from ...live_hub import LiveHub
from ...live_journal import RESYNC_REASONS, LiveJournal, Replay, position_key, to_micros
from ...security import issue_ticket
from ..deps import CurrentPrincipal, Principal, SettingsDep, get_principal_or_ticket
from ..errors import COMMON_RESPONSES

router = APIRouter(tags=["live updates"], responses=COMMON_RESPONSES)

POLL_SECONDS = 1.0
RECONNECT_MILLISECONDS = 3000
# A fresh stream's first cursor lies this far before the subscription: an event journaled just before it but fanned
# out just after (in flight, or journaled first by another replica) is replayed rather than lost.
FRESH_CURSOR_MARGIN_US = 2_000_000

SSE_DESCRIPTION = """A `text/event-stream` of the account's live events. Event names:

- `message.received` / `message.sent`: `{"conversation_id", "message_id", "stream_id", "topic_id", "direction",
  "is_first_message", "subject", "from", "received_at", "imported": false}`, and for a received one `"thread_reason"`
  (why it joined its conversation: `in_reply_to`, `references`, `reply_token`, `subject_and_sender` or `new`)
- `message.imported`: the same fields with `"imported": true`, for each mail of a history import (`mailstream
  import`, `POST /v1/streams/{id}/import`); an import brings many at once, so coalesce them (reload a list once)
  rather than notify per mail
- `message.delivery_changed`: `{"conversation_id", "message_id", "status": "queued"|"sent"|"failed", "detail"}`
- `conversation.changed`: `{"conversation_id", "status", "tags", "assignee", "priority", "changed_by",
  "participants"}`; also sent (`changed_by: "system"`) when a mail copies someone new into the conversation

Each event has an `id:`; lines starting with `:` are keep-alive comments. A new stream starts with an `id:` line of
its own, so that even a client that received nothing has a position to come back to.

**Reconnecting.** Send the last `id:` you received as the `Last-Event-ID` header (`EventSource` does this by itself
when it reconnects) or, for a new `EventSource` (e.g. with a fresh ticket), as `?last_event_id=`; the header wins
when both are present. The stream then first replays the events of your account that you missed, oldest first,
and continues live without gaps or duplicates. Events are kept for `INBOX_EVENTS_RETENTION_SECONDS` (1 h by
default). When the missed events cannot be replayed completely, you get one event instead:

- `resync`: `{"reason", "detail"}`, reason one of `invalid_last_event_id` (not an id of this API), `expired`
  (older than the retention), `gap` (for a while no gateway was recording events), `too_many_missed`,
  `journal_unavailable`. Reload what you show from the REST API; the live events continue on the same stream.

Authenticate with the `Authorization` header or, from a browser's `EventSource` (which cannot send headers), with
`?ticket=` from `POST /v1/events/tickets` (valid for a minute, to open the stream).
"""


class EventsTicket(BaseModel):
    ticket: str
    expires_at: datetime
    url: str


def resync_event(reason: str, cursor: str) -> str:
    data = json.dumps({"reason": reason, "detail": RESYNC_REASONS[reason]}, separators=(",", ":"))
    return f"id: {cursor}\nevent: resync\ndata: {data}\n\n"


def opening(replay: Replay, fresh: bool, subscribed_us: int) -> list[str]:
    """What a stream sends before live events: the replay, a resync, or (new stream) a first cursor."""
    if replay.resync is not None:
        return [resync_event(replay.resync, position_key(subscribed_us - FRESH_CURSOR_MARGIN_US))]
    if replay.events:
        return [event.encode() for event in replay.events]
    if fresh:
        return [f"id: {position_key(subscribed_us - FRESH_CURSOR_MARGIN_US)}\n\n"]
    return []  # nothing missed: the client's own Last-Event-ID is still its position


async def event_stream(
    request: Request,
    hub: LiveHub,
    account_id: str,
    keepalive: float,
    *,
    key_id: str | None = None,
    last_event_id: str | None = None,
) -> AsyncIterator[str]:
    with hub.subscribe(account_id, key_id) as subscription:
        subscribed_us = to_micros(time.time())
        yield f"retry: {RECONNECT_MILLISECONDS}\n: connected\n\n"
        journal: LiveJournal | None = hub.journal
        replay = await journal.replay(account_id, last_event_id) if journal is not None else Replay()
        for chunk in opening(replay, last_event_id is None, subscribed_us):
            yield chunk
        replayed = {event.event_id for event in replay.events}
        last_sent = time.monotonic()
        while True:
            try:
                event = await subscription.next(timeout=POLL_SECONDS)
            except EOFError:
                return
            if event is not None:
                if event.event_id in replayed or (replay.after is not None and event.id <= replay.after):
                    continue  # sent by the replay, or before the client's cursor (a replica that lags behind)
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
    request: Request,
    principal: Annotated[Principal, Depends(get_principal_or_ticket)],
    settings: SettingsDep,
    last_event_id_header: Annotated[
        str | None, Header(alias="Last-Event-ID", description="The last `id:` received (sent by EventSource)")
    ] = None,
    last_event_id: Annotated[
        str | None, Query(description="The last `id:` received, for clients that cannot set the header")
    ] = None,
) -> StreamingResponse:
    # Never refuse a bad id with 4xx: EventSource stops reconnecting on an error status. It gets `resync` instead.
    hub: LiveHub = request.app.state.live
    if not hub.has_room(principal.account_id):
        raise HTTPException(429, detail="too many open event streams for this account", headers={"Retry-After": "10"})
    cursor = last_event_id_header if last_event_id_header is not None else last_event_id
    return StreamingResponse(
        event_stream(
            request,
            hub,
            principal.account_id,
            settings.sse_keepalive_seconds,
            key_id=principal.key_id,
            last_event_id=cursor or None,
        ),
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
    ticket, expires = issue_ticket(principal, settings.gateway_token.get_secret_value())
    return EventsTicket(
        ticket=ticket, expires_at=datetime.fromtimestamp(expires, UTC), url=f"/v1/events?ticket={ticket}"
    )
