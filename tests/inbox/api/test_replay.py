"""`GET /v1/events` with `Last-Event-ID`: what a reconnecting client missed, exactly once, in order, then live events,
over real HTTP, AMQP and the database, against the package's gateway.

Ordering in these tests: a stream counts as open once the hub has its subscription (events published after that
are buffered for it); an event counts as missed once the gateway journaled it (its entry is in the database),
which happens before the hub hands it to any client.
"""

import asyncio
from datetime import UTC, datetime

from mailstream_common.contracts import MessageDeliveryChanged
from mailstream_inbox.live_journal import event_key, parse_cursor, position_key, to_micros
from mailstream_inbox.repositories import live_events as live_events_repo
from tests.inbox.live_support import changed, event_id_of, journaled, streaming, subscribed
from tests.support.waiting import wait_for


async def first_cursor(gateway, broker, account) -> str:
    """Open a stream, receive one event, close it: the id a reconnecting client would send."""
    async with streaming(account.agent) as stream:
        await subscribed(gateway, account.account_id)
        seen = changed(account.account_id, "seen")
        await broker.publish(seen)
        _name, data, sse_id = await stream.next()
        assert data["conversation_id"] == "seen"
        assert event_id_of(sse_id) == seen.event_id
    await subscribed(gateway, account.account_id, 0)
    return sse_id


async def test_a_reconnect_gets_exactly_the_missed_events_in_order_then_live_ones(
    inbox_gateway, broker, account, other_account
):
    cursor = await first_cursor(inbox_gateway, broker, account)
    missed = [
        changed(account.account_id, "c2", "pending"),
        MessageDeliveryChanged(account_id=account.account_id, conversation_id="c2", message_id="m2", status="sent"),
        changed(account.account_id, "c3", "closed"),
    ]
    theirs = changed(other_account.account_id, "theirs")
    for event in (missed[0], theirs, *missed[1:]):
        await broker.publish(event)
    await journaled(inbox_gateway, account.account_id, *missed)
    await journaled(inbox_gateway, other_account.account_id, theirs)

    async with streaming(account.agent, headers={"Last-Event-ID": cursor}) as stream:
        replayed = [await stream.next() for _ in missed]
        assert [event_id_of(sse_id) for _, _, sse_id in replayed] == [e.event_id for e in missed]
        assert [name for name, _, _ in replayed] == [
            "conversation.changed",
            "message.delivery_changed",
            "conversation.changed",
        ]
        assert [d.get("status") for _, d, _ in replayed] == ["pending", "sent", "closed"]
        ids = [cursor] + [sse_id for _, _, sse_id in replayed]
        assert ids == sorted(ids) and len(set(ids)) == len(ids)

        live = changed(account.account_id, "live")
        await broker.publish(live)
        name, data, sse_id = await stream.next()
        assert (name, data["conversation_id"], event_id_of(sse_id)) == ("conversation.changed", "live", live.event_id)
        assert sse_id > ids[-1]
        assert stream.events.empty(), "nothing twice, nothing of the other account"

    # The other account, presenting this account's cursor, gets its own event after that point and nothing else.
    async with streaming(other_account.agent, headers={"Last-Event-ID": cursor}) as stream:
        name, data, sse_id = await stream.next()
        assert (data["conversation_id"], event_id_of(sse_id)) == ("theirs", theirs.event_id)
        marker = changed(other_account.account_id, "marker")
        await broker.publish(marker)
        assert (await stream.next())[1]["conversation_id"] == "marker"
        assert stream.events.empty()


async def test_an_event_both_replayed_and_live_at_the_seam_is_sent_once(inbox_gateway, broker, account, monkeypatch):
    hub = inbox_gateway.app.state.live
    cursor = await first_cursor(inbox_gateway, broker, account)
    missed = changed(account.account_id, "missed")
    await broker.publish(missed)
    await journaled(inbox_gateway, account.account_id, missed)

    # Between the subscription and the journal read, one more event is journaled and fanned out: it is then both
    # in the replay and in the stream's live buffer.
    overlap = changed(account.account_id, "overlap")
    fanned_out = asyncio.Event()
    real_publish, real_replay = hub.publish, hub.journal.replay

    def publish(account_id, event):
        delivered = real_publish(account_id, event)
        if event.event_id == overlap.event_id:
            assert delivered == 1, "the reconnecting stream is subscribed before its replay"
            fanned_out.set()
        return delivered

    async def replay_with_overlap(account_id, last_event_id):
        await broker.publish(overlap)
        await asyncio.wait_for(fanned_out.wait(), 30)
        return await real_replay(account_id, last_event_id)

    monkeypatch.setattr(hub, "publish", publish)
    monkeypatch.setattr(hub.journal, "replay", replay_with_overlap)
    async with streaming(account.agent, headers={"Last-Event-ID": cursor}) as stream:
        assert (await stream.next())[1]["conversation_id"] == "missed"
        assert (await stream.next())[1]["conversation_id"] == "overlap"
        marker = changed(account.account_id, "marker")
        await broker.publish(marker)
        assert (await stream.next())[1]["conversation_id"] == "marker", "overlap was not sent a second time"
        assert stream.events.empty()


async def test_a_live_event_the_client_had_before_its_cursor_is_not_sent_again(inbox_gateway, broker, account):
    """A replica that lags behind another fans out, after the reconnect, events the client saw before its cursor."""
    early = changed(account.account_id, "seen on a faster replica")
    # That faster replica journaled it before the client's cursor; this gateway only gets it now.
    await live_events_repo.record(
        inbox_gateway.db,
        account.account_id,
        early.event_id,
        event_key(to_micros(datetime.now(UTC).timestamp()), early.event_id),
        "conversation.changed",
        {"conversation_id": "seen on a faster replica"},
        datetime.now(UTC).timestamp(),
        retention=3600,
    )
    cursor = await first_cursor(inbox_gateway, broker, account)
    async with streaming(account.agent, headers={"Last-Event-ID": cursor}) as stream:
        await subscribed(inbox_gateway, account.account_id)
        await broker.publish(early)
        marker = changed(account.account_id, "marker")
        await broker.publish(marker)
        assert (await stream.next())[1]["conversation_id"] == "marker"
        assert stream.events.empty()


async def test_a_quiet_stream_still_has_a_position_to_resume_from(inbox_gateway, broker, account):
    async with streaming(account.agent) as stream:
        await subscribed(inbox_gateway, account.account_id)

        async def positioned() -> str | None:
            return stream.last_id

        position = await wait_for(positioned, what="the stream's first id")
    await subscribed(inbox_gateway, account.account_id, 0)
    assert parse_cursor(position) is not None
    while_away = changed(account.account_id, "while away")
    await broker.publish(while_away)
    await journaled(inbox_gateway, account.account_id, while_away)
    # A client that must build a new connection (a fresh ticket, say) passes the position as a query parameter.
    async with streaming(account.agent, params={"last_event_id": position}) as stream:
        _name, data, sse_id = await stream.next()
        assert (data["conversation_id"], event_id_of(sse_id)) == ("while away", while_away.event_id)


async def test_ids_that_cannot_be_replayed_from_get_a_resync_event_and_the_stream_goes_on(
    inbox_gateway, broker, account
):
    now = datetime.now(UTC).timestamp()
    retention = inbox_gateway.settings.events_retention_seconds
    spans = await inbox_gateway.db[live_events_repo.WRITERS].find({}).to_list(None)
    before_any_gateway = min(s["started_at"].timestamp() for s in spans) - 60
    assert before_any_gateway > now - retention, "the package's gateway started within the retention"
    cases = [
        ({"headers": {"Last-Event-ID": "not-an-id"}}, "invalid_last_event_id"),
        ({"headers": {"Last-Event-ID": "5c1f0e5e9a4b4e7f8d6c5b4a39281706"}}, "invalid_last_event_id"),
        ({"headers": {"Last-Event-ID": "9" * 500}}, "invalid_last_event_id"),
        ({"params": {"last_event_id": "not-an-id"}}, "invalid_last_event_id"),
        ({"headers": {"Last-Event-ID": position_key(to_micros(now + 3600))}}, "invalid_last_event_id"),
        ({"headers": {"Last-Event-ID": position_key(to_micros(now - retention - 60))}}, "expired"),
        ({"headers": {"Last-Event-ID": position_key(to_micros(before_any_gateway))}}, "gap"),
    ]
    for request, reason in cases:
        async with streaming(account.agent, **request) as stream:
            name, data, sse_id = await stream.next()
            assert (name, data["reason"]) == ("resync", reason), request
            assert data["detail"]
            assert parse_cursor(sse_id) is not None, "the client gets a position it can resume from"
            await subscribed(inbox_gateway, account.account_id)
            live = changed(account.account_id, f"after {reason}")
            await broker.publish(live)
            assert (await stream.next())[1]["conversation_id"] == live.conversation_id
        await subscribed(inbox_gateway, account.account_id, 0)


async def test_the_header_wins_over_the_query_parameter(inbox_gateway, broker, account):
    """EventSource reconnects to the same URL (old `last_event_id`) with a newer Last-Event-ID header."""
    cursor = await first_cursor(inbox_gateway, broker, account)
    missed = changed(account.account_id, "missed")
    await broker.publish(missed)
    await journaled(inbox_gateway, account.account_id, missed)
    async with streaming(
        account.agent, headers={"Last-Event-ID": cursor}, params={"last_event_id": "stale-and-invalid"}
    ) as stream:
        name, data, _ = await stream.next()
        assert (name, data["conversation_id"]) == ("conversation.changed", "missed")


async def test_too_many_missed_events_ask_to_resync(inbox_gateway, broker, account, monkeypatch):
    cursor = await first_cursor(inbox_gateway, broker, account)
    missed = [changed(account.account_id, f"c{i}") for i in range(3)]
    for event in missed:
        await broker.publish(event)
    await journaled(inbox_gateway, account.account_id, *missed)
    journal = inbox_gateway.app.state.live.journal

    async def all_remembered() -> bool:  # the replica remembers an event just after its database write
        now = datetime.now(UTC).timestamp()
        remembered = journal.recent.after(account.account_id, parse_cursor(cursor), now)
        return remembered is None or len(remembered) == len(missed)

    await wait_for(all_remembered, what="the replica to remember the missed events")
    monkeypatch.setattr(journal, "replay_max", 2)
    async with streaming(account.agent, headers={"Last-Event-ID": cursor}) as stream:
        name, data, _ = await stream.next()
        assert (name, data["reason"]) == ("resync", "too_many_missed")
        assert stream.events.empty()
