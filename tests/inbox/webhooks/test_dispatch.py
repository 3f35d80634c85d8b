"""The dispatcher end to end: real mail into the inbox, real RabbitMQ, real dispatcher processes, a real HTTP
endpoint that verifies every request with the Standard Webhooks reference library."""

import asyncio
import contextlib
import uuid
from collections import defaultdict
from datetime import UTC, datetime

import pytest
import pytest_asyncio
from standardwebhooks.webhooks import Webhook

from mailstream_common.contracts import DomainChanged, MessageDeliveryChanged, MessageStored
from tests.inbox.conftest import create_stream
from tests.inbox.live_support import streaming
from tests.support.waiting import wait_for


async def subscribe(account, receiver, path: str, event_types: list[str], *answers, **endpoint) -> dict:
    url = receiver.endpoint(path, *answers, **endpoint)
    response = await account.admin.post("/v1/webhooks", json={"url": url, "event_types": event_types})
    assert response.status_code == 201, response.text
    hook = response.json()
    receiver.set_secret(path, hook["secret"])
    return hook


async def deliveries(account, hook: dict) -> list[dict]:
    response = await account.admin.get(f"/v1/webhooks/{hook['id']}/deliveries", params={"limit": 200})
    assert response.status_code == 200, response.text
    return response.json()["items"]


async def settled(account, hook: dict, count: int, state: str = "delivered", timeout: float = 60) -> list[dict]:
    async def probe():
        items = await deliveries(account, hook)
        done = [d for d in items if d["state"] == state]
        return items if len(done) >= count else None

    return await wait_for(probe, timeout=timeout, interval=0.2, what=f"{count} deliveries {state}")


@pytest.fixture(autouse=True)
def _allowed(private_destinations_allowed):
    return None


async def test_a_mail_reaches_the_endpoint_signed_after_a_500_and_a_timeout(
    account, receiver, start_dispatcher, deliver
):
    await start_dispatcher()
    hook = await subscribe(account, receiver, "/retry", ["message.received"], 500, ("stall", 4))
    target = await create_stream(account, "retry@acme.test")
    mail = await deliver(target, subject="Where is my order?")

    [delivery] = await settled(account, hook, 1)
    requests = receiver.at("/retry")
    assert len(requests) == 3
    assert all(r.verified for r in requests), "the reference verifier refused a signature"
    assert {r.webhook_id for r in requests} == {delivery["id"]}  # one logical delivery, three attempts
    assert requests[0].payload["type"] == "message.received"
    assert requests[0].payload["data"]["subject"] == mail.subject
    assert requests[0].payload["data"]["account_id"] == account.account_id
    assert len({r.headers["webhook-timestamp"] for r in requests}) >= 2  # each attempt signs anew
    assert requests[1].at - requests[0].at >= 0.75  # backoff (1 s -20 %), not an immediate retry

    detail = (await account.admin.get(f"/v1/webhooks/{hook['id']}/deliveries/{delivery['id']}")).json()
    log = detail["attempt_log"]
    assert [a["status_code"] for a in log] == [500, None, 200]
    assert "timeout" in log[1]["error"] and log[0]["response_snippet"] == "answer 500"
    assert all(a["latency_ms"] >= 0 for a in log) and log[1]["latency_ms"] >= 1900
    assert detail["state"] == "delivered" and detail["attempts"] == 3


async def test_conversation_events_and_a_replay_by_hand(account, receiver, start_dispatcher, deliver):
    await start_dispatcher()
    hook = await subscribe(account, receiver, "/conv", ["conversation.created", "conversation.updated"])
    target = await create_stream(account, "conv@acme.test")
    await deliver(target)

    async def created_delivery():
        items = await deliveries(account, hook)
        return next((d for d in items if d["event_type"] == "conversation.created" and d["state"] == "delivered"), None)

    created = await wait_for(created_delivery, timeout=60, interval=0.2, what="conversation.created delivered")
    conversation_id = created["payload"]["data"]["conversation_id"]
    assert created["payload"]["data"]["stream_id"] == target.stream_id
    patched = await account.admin.patch(f"/v1/conversations/{conversation_id}", json={"status": "closed"})
    assert patched.status_code == 200, patched.text

    async def closed_update():
        return next(
            (
                r.payload
                for r in receiver.at("/conv")
                if r.payload["type"] == "conversation.updated" and r.payload["data"]["status"] == "closed"
            ),
            None,
        )

    updated = await wait_for(closed_update, timeout=60, what="conversation.updated (closed) arrives")
    assert updated["data"]["conversation_id"] == conversation_id
    assert updated["data"]["changed_by"].startswith("agent:")

    # A replay by hand sends the same delivery again, with the same webhook-id; after a rotation it is signed with
    # both secrets, so the receiver (still holding the old one) and one that switched both verify it.
    rotated = (await account.admin.post(f"/v1/webhooks/{hook['id']}/secret/rotate")).json()
    replay = await account.admin.post(f"/v1/webhooks/{hook['id']}/deliveries/{created['id']}/replay")
    assert replay.status_code == 202, replay.text
    await wait_for(
        lambda: _count(receiver, "/conv", created["id"], 2), timeout=30, what="the replayed delivery arrives"
    )
    detail = await wait_for(
        lambda: _delivered_detail(account, hook, created["id"], attempts=2), timeout=30, what="replay recorded"
    )
    assert [a["outcome"] for a in detail["attempt_log"]] == ["succeeded", "succeeded"]
    assert all(r.verified for r in receiver.at("/conv"))
    replayed = [r for r in receiver.at("/conv") if r.webhook_id == created["id"]][-1]
    Webhook(rotated["secret"]).verify(replayed.body, replayed.headers)


async def test_a_fact_published_twice_is_one_delivery(account, receiver, start_dispatcher, test_broker):
    await start_dispatcher()
    hook = await subscribe(account, receiver, "/once", ["message.received"])
    fact = stored_message(account.account_id, "m-once")
    await test_broker.publish(fact)
    await test_broker.publish(fact)  # a redelivery
    await test_broker.publish(fact.model_copy(update={"event_id": uuid.uuid4().hex}))  # a second publication
    await test_broker.publish(stored_message(account.account_id, "m-next"))  # a later fact, to know all were seen
    items = await settled(account, hook, 2)
    assert sorted(d["payload"]["data"]["message_id"] for d in items) == ["m-next", "m-once"]
    await wait_for(lambda: _at_least(receiver, "/once", 2), timeout=30, what="both facts arrive")
    assert sorted(r.payload["data"]["message_id"] for r in receiver.at("/once")) == ["m-next", "m-once"]


def stored_message(account_id: str, message_id: str) -> MessageStored:
    return MessageStored.model_validate(
        {
            "account_id": account_id,
            "topic_id": "t",
            "stream_id": "s",
            "conversation_id": f"c-{message_id}",
            "message_id": message_id,
            "direction": "inbound",
            "is_first_message": False,
            "from": {"name": "", "address": "ann@example.net"},
            "received_at": datetime.now(UTC),
        }
    )


async def _count(receiver, path, webhook_id, at_least):
    return len([r for r in receiver.at(path) if r.webhook_id == webhook_id]) >= at_least


async def _delivered_detail(account, hook, delivery_id, attempts):
    detail = (await account.admin.get(f"/v1/webhooks/{hook['id']}/deliveries/{delivery_id}")).json()
    return detail if detail["state"] == "delivered" and len(detail["attempt_log"]) >= attempts else None


async def test_a_redirect_is_not_followed_and_the_schedule_ends_in_failed(account, receiver, start_dispatcher, deliver):
    await start_dispatcher(WEBHOOKS_RETRY_DELAYS="0.5")
    hook = await subscribe(account, receiver, "/moved", ["message.received"], default=302)
    receiver.endpoint("/elsewhere")  # where the redirect points; it must never be called
    target = await create_stream(account, "moved@acme.test")
    await deliver(target)
    [failed] = await settled(account, hook, 1, state="failed")
    assert failed["attempts"] == 2 and failed["last_status"] == 302
    assert "redirects are not followed" in failed["last_error"]
    assert receiver.at("/elsewhere") == []


async def test_a_subscription_failing_too_long_is_disabled_and_the_live_stream_says_so(
    account, receiver, start_dispatcher, deliver
):
    await start_dispatcher(WEBHOOKS_RETRY_DELAYS="1,1,1,1,1", WEBHOOKS_DISABLE_AFTER_SECONDS="2")
    hook = await subscribe(account, receiver, "/down", ["message.received"], default=503)
    target = await create_stream(account, "down@acme.test")
    async with streaming(account.admin) as live:
        await deliver(target)

        async def disabled_event():
            while True:
                name, data, _ = await live.next(timeout=60)
                if name == "webhook.subscription_disabled":
                    return data

        data = await asyncio.wait_for(disabled_event(), 60)
    assert data["subscription_id"] == hook["id"] and data["reason"] == "HTTP 503"
    current = (await account.admin.get(f"/v1/webhooks/{hook['id']}")).json()
    assert current["enabled"] is False and current["disabled_reason"] == "HTTP 503"
    assert current["failing_since"] is not None
    # Its pending delivery ends as failed instead of being tried for days against a disabled endpoint.
    [delivery] = await settled(account, hook, 1, state="failed")
    assert delivery["last_error"] in ("subscription disabled", "HTTP 503")
    refused = await account.admin.post(f"/v1/webhooks/{hook['id']}/deliveries/{delivery['id']}/replay")
    assert refused.status_code == 409 and "disabled" in refused.json()["detail"]
    # Enabling it again clears the record of failures.
    enabled = (await account.admin.patch(f"/v1/webhooks/{hook['id']}", json={"enabled": True})).json()
    assert enabled["enabled"] is True and enabled["failing_since"] is None and enabled["disabled_reason"] is None


async def test_exactly_one_logical_delivery_per_event_across_a_kill_9_of_the_dispatcher(
    account, receiver, start_dispatcher, deliver
):
    first = await start_dispatcher(WEBHOOKS_CONCURRENCY="4")
    mails = 20
    hook = await subscribe(account, receiver, "/crash", ["message.received"], delay=0.3)
    target = await create_stream(account, "crash@acme.test")
    for index in range(mails):
        await deliver(target, subject=f"order {index}")
    await wait_for(lambda: _at_least(receiver, "/crash", 4), timeout=60, what="some deliveries under way")
    first.kill()  # SIGKILL: requests in flight, leases held, messages unacked
    await start_dispatcher(WEBHOOKS_CONCURRENCY="4")
    items = await settled(account, hook, mails, timeout=120)
    assert len(items) == mails and {d["state"] for d in items} == {"delivered"}

    requests = receiver.at("/crash")
    assert all(r.verified for r in requests)
    ids_by_subject: dict[str, set[str]] = defaultdict(set)
    subjects_by_id: dict[str, set[str]] = defaultdict(set)
    for r in requests:
        ids_by_subject[r.payload["data"]["subject"]].add(r.webhook_id)
        subjects_by_id[r.webhook_id].add(r.payload["data"]["subject"])
    assert set(ids_by_subject) == {f"order {i}" for i in range(mails)}  # every event arrived
    assert all(len(ids) == 1 for ids in ids_by_subject.values())  # one webhook-id per event...
    assert all(len(s) == 1 for s in subjects_by_id.values())  # ...and one event per webhook-id
    assert {d["id"] for d in items} == set(subjects_by_id)


async def _at_least(receiver, path, count):
    return len(receiver.at(path)) >= count


@pytest_asyncio.fixture(autouse=True, loop_scope="session")
async def _cleanup_subscriptions(account):
    """Delete the test's subscriptions: their pending deliveries then end instead of retrying in later tests."""
    yield
    with contextlib.suppress(Exception):
        for hook in (await account.admin.get("/v1/webhooks")).json()["items"]:
            await account.admin.delete(f"/v1/webhooks/{hook['id']}")


async def test_stream_status_domain_verification_and_delivery_changes_arrive(
    account, receiver, start_dispatcher, deliver, test_broker
):
    await start_dispatcher()
    types = ["stream.status_changed", "domain.verification_changed", "message.delivery_changed"]
    await subscribe(account, receiver, "/facts", types)
    target = await create_stream(account, "facts@acme.test")
    await deliver(target)  # the first mail: awaiting_mail -> receiving (published by the catalogue relay)
    await test_broker.publish(
        DomainChanged(
            change="status_changed", account_id=account.account_id, domain_id="d1", name="acme.test", status="verified"
        )
    )
    await test_broker.publish(  # not a verification change: no webhook
        DomainChanged(
            change="key_rotated", account_id=account.account_id, domain_id="d1", name="acme.test", status="verified"
        )
    )
    await test_broker.publish(
        MessageDeliveryChanged(
            account_id=account.account_id, conversation_id="c1", message_id="m1", status="sent", detail="250 ok"
        )
    )

    def of(kind: str) -> list[dict]:
        return [r.payload["data"] for r in receiver.at("/facts") if r.payload["type"] == kind]

    async def all_arrived() -> bool:
        statuses = [d["status"] for d in of("stream.status_changed") if d["stream_id"] == target.stream_id]
        return (
            statuses == ["awaiting_mail", "receiving"]
            and of("domain.verification_changed")
            and of("message.delivery_changed")
        )

    await wait_for(all_arrived, timeout=90, interval=0.2, what="stream, domain and delivery webhooks")
    receiving = next(d for d in of("stream.status_changed") if d["status"] == "receiving")
    assert receiving["previous_status"] == "awaiting_mail" and receiving["address"] == "facts@acme.test"
    assert of("domain.verification_changed") == [
        {"account_id": account.account_id, "domain_id": "d1", "name": "acme.test", "status": "verified"}
    ]
    assert of("message.delivery_changed")[0]["status"] == "sent"
    assert all(r.verified for r in receiver.at("/facts"))


async def test_the_dispatcher_refuses_a_private_destination_unless_the_operator_allows_it(
    account, receiver, start_dispatcher, deliver
):
    await start_dispatcher(WEBHOOKS_ALLOW_PRIVATE_DESTINATIONS="false", WEBHOOKS_RETRY_DELAYS="0.5")
    hook = await subscribe(account, receiver, "/private", ["message.received"])
    target = await create_stream(account, "private@acme.test")
    await deliver(target)
    [failed] = await settled(account, hook, 1, state="failed")
    assert receiver.at("/private") == []  # no request ever left
    detail = (await account.admin.get(f"/v1/webhooks/{hook['id']}/deliveries/{failed['id']}")).json()
    assert [a["error"] for a in detail["attempt_log"]] == ["destination refused: 127.0.0.1 is a loopback address"] * 2
    assert all(a["status_code"] is None for a in detail["attempt_log"])
