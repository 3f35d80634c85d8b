"""Conversations agents can trust, over time: merge and unmerge, split and move back, snooze, and scheduled
replies, end to end: mail in through real SMTP, everything through the gateway's public API, announcements on the
live stream, replies out through the relay (smtp-sink). The last scenario kills inbox and sender (kill -9) while a
scheduled reply waits on the broker's delay ladder."""

import time
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import make_msgid

import httpx
import pytest

from tests.e2e.conftest import System, wait_for_json
from tests.e2e.scenarios_support import (
    LIVE_ENV,
    EventListener,
    conversations_of,
    messages_of,
    new_account,
    new_stream,
    relay_mail_to,
    smtp_send,
    wait_for_conversation,
)
from tests.support.waiting import wait_for_sync

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def system(backends, tmp_path_factory):
    from tests.e2e.conftest import running_system

    with running_system(backends, tmp_path_factory, "time", LIVE_ENV) as running:
        yield running


# Merges and moves are a few dozen database round trips; on a machine shared with other test runs a request can
# take longer than the default client's 10 s.
REQUEST_TIMEOUT = httpx.Timeout(30)


def account_with_client(system: System, name: str):
    account, api = new_account(system, name)
    api.timeout = REQUEST_TIMEOUT
    return account, api


def customer_mail(
    stream: dict, subject: str, text: str, *, sender: str, in_reply_to: str | None = None
) -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = f"Customer <{sender}>"
    mail["To"] = stream["address"]
    mail["Subject"] = subject
    mail["Message-ID"] = make_msgid(domain="example.net")
    if in_reply_to:
        mail["In-Reply-To"] = in_reply_to
        mail["References"] = in_reply_to
    mail.set_content(text)
    return mail


def send(system: System, stream: dict, mail: EmailMessage) -> str:
    smtp_send(system, mail, mail_from=mail["From"].addresses[0].addr_spec, rcpt=stream["forwarding_address"])
    return mail["Message-ID"]


def conversation(api, conversation_id: str) -> dict:
    response = api.get(f"/v1/conversations/{conversation_id}")
    assert response.status_code == 200, response.text
    return response.json()


def timeline_kinds(api, conversation_id: str) -> list[str]:
    response = api.get(f"/v1/conversations/{conversation_id}/timeline")
    assert response.status_code == 200, response.text
    return [entry["kind"] for entry in response.json()["items"]]


def wait_for_count(api, conversation_id: str, count: int) -> dict:
    return wait_for_json(
        api,
        f"/v1/conversations/{conversation_id}",
        lambda c: c["message_count"] == count,
        timeout=30,
        what=f"{count} messages in {conversation_id}",
    )


def test_merge_then_later_mail_threads_into_the_target_and_unmerge_moves_back(system: System):
    account, api = account_with_client(system, "Merging")
    stream = new_stream(api, "merge@acme.test")
    other_stream = new_stream(api, "merge-other@acme.test", topic="Other")
    first_id = send(system, stream, customer_mail(stream, "Order 11", "Where is order 11?", sender="mo@example.net"))
    second_id = send(system, stream, customer_mail(stream, "Refund 12", "Refund please", sender="mo@example.net"))
    target = wait_for_conversation(api, stream["id"], "Order 11")
    merged = wait_for_conversation(api, stream["id"], "Refund 12")
    send(system, other_stream, customer_mail(other_stream, "Elsewhere", "x", sender="mo@example.net"))
    elsewhere = wait_for_conversation(api, other_stream["id"], "Elsewhere")

    # Across streams: 409; another account's id: 404 both ways.
    across = api.post(f"/v1/conversations/{merged['id']}/merge", json={"into": elsewhere["id"]})
    assert across.status_code == 409, across.text
    _, stranger = account_with_client(system, "Stranger")
    assert stranger.post(f"/v1/conversations/{merged['id']}/merge", json={"into": target["id"]}).status_code == 404
    assert api.post(f"/v1/conversations/{merged['id']}/merge", json={"into": "0" * 32}).status_code == 404

    with EventListener(system, account["api_key"]) as live:
        response = api.post(f"/v1/conversations/{merged['id']}/merge", json={"into": target["id"]})
        assert response.status_code == 200, response.text
        assert response.json()["message_count"] == 2
        live.wait_for(
            lambda name, data: (
                name == "conversation.timeline" and data["kind"] == "merged" and data["conversation_id"] == target["id"]
            ),
            what="the merge announced",
        )

    gone = conversation(api, merged["id"])
    assert gone["merged_into"] == target["id"] and gone["message_count"] == 0
    assert merged["id"] not in [c["id"] for c in conversations_of(api, stream["id"])]
    # The merged id redirects: its messages are the target's.
    assert {m["message_id_header"] for m in messages_of(api, merged["id"])} == {first_id, second_id}
    assert "merged" in timeline_kinds(api, target["id"]) and "merged" in timeline_kinds(api, merged["id"])

    # Later mail for the merged conversation lands in the target: by reference, and by the subject fallback.
    send(
        system,
        stream,
        customer_mail(stream, "Re: Refund 12", "Any news?", sender="mo@example.net", in_reply_to=second_id),
    )
    wait_for_count(api, target["id"], 3)
    # no references: the subject fallback finds the merged conversation and follows its link
    send(system, stream, customer_mail(stream, "RE: Refund 12", "Still waiting", sender="mo@example.net"))
    wait_for_count(api, target["id"], 4)
    assert conversation(api, merged["id"])["message_count"] == 0

    # Undo: what the merge brought goes back; what arrived since stays in the target.
    undone = api.post(f"/v1/conversations/{merged['id']}/unmerge")
    assert undone.status_code == 200, undone.text
    assert undone.json()["merged_into"] is None and undone.json()["message_count"] == 1
    assert [m["message_id_header"] for m in messages_of(api, merged["id"])] == [second_id]
    assert conversation(api, target["id"])["message_count"] == 3
    assert timeline_kinds(api, merged["id"])[-1] == "unmerged"
    assert api.post(f"/v1/conversations/{merged['id']}/unmerge").status_code == 409


def test_split_a_message_off_then_move_it_back(system: System):
    _, api = account_with_client(system, "Splitting")
    stream = new_stream(api, "split@acme.test")
    first_id = send(system, stream, customer_mail(stream, "Two things", "Thing one", sender="sp@example.net"))
    original = wait_for_conversation(api, stream["id"], "Two things")
    second_id = send(
        system,
        stream,
        customer_mail(stream, "Re: Two things", "Thing two", sender="sp@example.net", in_reply_to=first_id),
    )
    wait_for_count(api, original["id"], 2)
    second = next(m for m in messages_of(api, original["id"]) if m["message_id_header"] == second_id)

    _, stranger = account_with_client(system, "Split stranger")
    refused = stranger.post(f"/v1/messages/{second['id']}/move", json={"conversation_id": None})
    assert refused.status_code == 404

    split = api.post(f"/v1/messages/{second['id']}/move", json={"conversation_id": None})
    assert split.status_code == 200, split.text
    assert split.json()["kind"] == "split"
    new_id = split.json()["to_conversation_id"]
    assert new_id != original["id"]
    assert conversation(api, new_id)["message_count"] == 1
    assert conversation(api, original["id"])["message_count"] == 1
    assert [m["id"] for m in messages_of(api, new_id)] == [second["id"]]

    # A reply to the split-off message follows it into the new conversation.
    send(
        system,
        stream,
        customer_mail(stream, "Re: Two things", "About thing two", sender="sp@example.net", in_reply_to=second_id),
    )
    wait_for_count(api, new_id, 2)

    back = api.post(f"/v1/messages/{second['id']}/move", json={"conversation_id": original["id"]})
    assert back.status_code == 200, back.text
    assert back.json()["kind"] == "moved_back"
    assert [m["message_id_header"] for m in messages_of(api, original["id"])] == [first_id, second_id]
    assert conversation(api, new_id)["message_count"] == 1
    assert timeline_kinds(api, original["id"]) == ["split", "moved_back"]
    assert timeline_kinds(api, new_id) == ["split", "moved_back"]


def test_snooze_hides_the_conversation_and_reopens_it_by_itself(system: System):
    account, api = account_with_client(system, "Snoozing")
    stream = new_stream(api, "snooze@acme.test")
    send(system, stream, customer_mail(stream, "Call me tomorrow", "Later please", sender="sn@example.net"))
    found = wait_for_conversation(api, stream["id"], "Call me tomorrow")

    past = api.put(f"/v1/conversations/{found['id']}/snooze", json={"until": "2020-01-01T00:00:00Z"})
    assert past.status_code == 422
    until = (datetime.now(UTC) + timedelta(seconds=5)).replace(microsecond=0)
    with EventListener(system, account["api_key"]) as live:
        snoozed = api.put(f"/v1/conversations/{found['id']}/snooze", json={"until": until.isoformat()})
        assert snoozed.status_code == 200, snoozed.text
        assert snoozed.json()["status"] == "snoozed"
        assert datetime.fromisoformat(snoozed.json()["snoozed_until"]) == until
        open_ids = [c["id"] for c in api.get("/v1/conversations", params={"status": "open"}).json()["items"]]
        assert found["id"] not in open_ids

        woke = live.wait_for(
            lambda name, data: (
                name == "conversation.timeline" and data["kind"] == "woke" and data["conversation_id"] == found["id"]
            ),
            what="the snooze ending by itself",
            timeout=40,
        )
    assert woke[1]["details"] == {"reason": "time"}
    assert datetime.now(UTC) >= until
    reopened = conversation(api, found["id"])
    assert reopened["status"] == "open" and reopened["snoozed_until"] is None
    assert timeline_kinds(api, found["id"]) == ["snoozed", "woke"]


def test_a_customer_message_ends_a_snooze_at_once_and_a_cancelled_snooze_reopens(system: System):
    _, api = account_with_client(system, "Snooze ended")
    stream = new_stream(api, "snooze2@acme.test")
    first_id = send(system, stream, customer_mail(stream, "Waiting on you", "Hi", sender="sw@example.net"))
    found = wait_for_conversation(api, stream["id"], "Waiting on you")
    until = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert api.put(f"/v1/conversations/{found['id']}/snooze", json={"until": until}).status_code == 200

    send(
        system,
        stream,
        customer_mail(stream, "Re: Waiting on you", "Actually now", sender="sw@example.net", in_reply_to=first_id),
    )
    reopened = wait_for_json(
        api,
        f"/v1/conversations/{found['id']}",
        lambda c: c["status"] == "open" and c["message_count"] == 2,
        timeout=30,
        what="reopened by the customer's mail",
    )
    assert reopened["snoozed_until"] is None
    entries = api.get(f"/v1/conversations/{found['id']}/timeline").json()["items"]
    assert [(e["kind"], e["details"].get("reason")) for e in entries] == [("snoozed", None), ("woke", "customer")]

    assert api.put(f"/v1/conversations/{found['id']}/snooze", json={"until": until}).status_code == 200
    cancelled = api.delete(f"/v1/conversations/{found['id']}/snooze")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "open"
    assert api.delete(f"/v1/conversations/{found['id']}/snooze").status_code == 409
    assert timeline_kinds(api, found["id"])[-1] == "unsnoozed"


def test_a_scheduled_reply_is_held_listed_and_cancellable(system: System):
    _, api = account_with_client(system, "Scheduling")
    stream = new_stream(api, "sched@acme.test")
    send(system, stream, customer_mail(stream, "Reply later", "Hi", sender="sc@example.net"))
    found = wait_for_conversation(api, stream["id"], "Reply later")

    send_at = (datetime.now(UTC) + timedelta(hours=2)).replace(microsecond=0)
    response = api.post(
        f"/v1/conversations/{found['id']}/replies",
        json={"text": "Good morning!", "apply_template": False, "send_at": send_at.isoformat()},
    )
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "scheduled"
    message_id = response.json()["message_id"]
    listed = api.get(f"/v1/conversations/{found['id']}/scheduled-replies").json()["items"]
    assert [(m["id"], m["schedule"]["state"]) for m in listed] == [(message_id, "held")]
    assert datetime.fromisoformat(listed[0]["schedule"]["send_at"]) == send_at

    _, stranger = account_with_client(system, "Schedule stranger")
    assert stranger.delete(f"/v1/conversations/{found['id']}/scheduled-replies/{message_id}").status_code == 404

    cancelled = api.delete(f"/v1/conversations/{found['id']}/scheduled-replies/{message_id}")
    assert cancelled.status_code == 204, cancelled.text
    assert api.get(f"/v1/conversations/{found['id']}/scheduled-replies").json()["items"] == []
    assert [m["direction"] for m in messages_of(api, found["id"])] == ["inbound"]
    assert api.delete(f"/v1/conversations/{found['id']}/scheduled-replies/{message_id}").status_code == 404
    assert timeline_kinds(api, found["id"]) == ["reply_scheduled", "scheduled_reply_cancelled"]
    assert relay_mail_to(system, "sc@example.net") == []


def test_a_scheduled_reply_survives_restarts_of_inbox_and_sender_and_leaves_once_at_its_time(system: System):
    _, api = account_with_client(system, "Scheduled restart")
    stream = new_stream(api, "later@acme.test")
    send(system, stream, customer_mail(stream, "Send it at nine", "Hi", sender="nine@example.net"))
    found = wait_for_conversation(api, stream["id"], "Send it at nine")

    send_at = (datetime.now(UTC) + timedelta(seconds=16)).replace(microsecond=0)
    response = api.post(
        f"/v1/conversations/{found['id']}/replies",
        json={"text": "It is nine.", "apply_template": False, "send_at": send_at.isoformat()},
    )
    assert response.status_code == 202, response.text
    message_id = response.json()["message_id"]
    api.close()

    # Both services crash (kill -9: no graceful shutdown) while the wake-up waits on the broker, and come back.
    for name in ("inbox", "sender"):
        system.processes[name].kill()
    assert relay_mail_to(system, "nine@example.net") == []
    for name in ("inbox", "sender"):
        system.processes[name].spawn()
    for name in ("inbox", "sender"):
        system.processes[name].wait_ready(timeout=120)

    api = system.client(api.headers["Authorization"].removeprefix("Bearer "))
    api.timeout = REQUEST_TIMEOUT
    sent = wait_for_sync(
        lambda: next(
            (
                m
                for m in messages_of(api, found["id"])
                if m["id"] == message_id and m["delivery"] and m["delivery"]["status"] == "sent"
            ),
            None,
        ),
        timeout=90,
        what="the scheduled reply sent",
    )
    assert datetime.fromisoformat(sent["schedule"]["send_at"]) == send_at
    assert sent["schedule"]["state"] == "sent"
    assert datetime.fromisoformat(sent["delivery"]["updated_at"]) >= send_at
    at_relay = relay_mail_to(system, "nine@example.net")
    assert len(at_relay) == 1, at_relay
    assert at_relay[0]["Message-ID"] == sent["message_id_header"]
    assert wait_for_sync(
        lambda: "scheduled_reply_sent" in timeline_kinds(api, found["id"]), timeout=30, what="timeline: sent"
    )
    assert api.get(f"/v1/conversations/{found['id']}/scheduled-replies").json()["items"] == []
    assert time.time() > send_at.timestamp()
