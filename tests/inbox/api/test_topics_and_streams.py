"""Topics and streams over real HTTP: forwarding addresses, set-up, StreamChanged events, forwarding checks."""

import re

import pytest

from mailstream_common.contracts import ReplyRequested, StreamChanged
from mailstream_inbox.repositories import streams as streams_repo
from tests.support.inbox_gateway import EventTap

FORWARDING_ADDRESS = re.compile(r"s-[a-z2-7]{26}@in\.mailstream\.test")


async def make_topic(client, name="Support") -> dict:
    response = await client.post("/v1/topics", json={"name": name})
    assert response.status_code == 201, response.text
    return response.json()


async def make_stream(client, topic_id: str, address="support@acme.com", **extra) -> dict:
    response = await client.post(f"/v1/topics/{topic_id}/streams", json={"address": address, **extra})
    assert response.status_code == 201, response.text
    return response.json()


@pytest.fixture
async def tap(backends):
    async with EventTap(backends.amqp_url, [StreamChanged, ReplyRequested]) as tap:
        yield tap


async def test_topics_crud_and_agents_read_only(account):
    topic = await make_topic(account.admin, "Acme")
    assert set(topic) >= {"id", "name"}
    assert (await account.agent.get(f"/v1/topics/{topic['id']}")).json()["name"] == "Acme"
    assert (await account.agent.post("/v1/topics", json={"name": "x"})).status_code == 403
    assert (await account.agent.patch(f"/v1/topics/{topic['id']}", json={"name": "y"})).status_code == 403
    renamed = await account.admin.patch(f"/v1/topics/{topic['id']}", json={"name": "Acme care"})
    assert renamed.json()["name"] == "Acme care"
    listed = (await account.agent.get("/v1/topics")).json()
    assert [t["name"] for t in listed["items"]] == ["Acme care"]
    assert listed["next_cursor"] is None
    assert (await account.admin.delete(f"/v1/topics/{topic['id']}")).status_code == 204
    assert (await account.admin.get(f"/v1/topics/{topic['id']}")).status_code == 404


async def test_a_topic_with_streams_cannot_be_deleted(account):
    topic = await make_topic(account.admin)
    stream = await make_stream(account.admin, topic["id"])
    assert (await account.admin.delete(f"/v1/topics/{topic['id']}")).status_code == 409
    assert (await account.admin.delete(f"/v1/streams/{stream['id']}")).status_code == 204
    assert (await account.admin.delete(f"/v1/topics/{topic['id']}")).status_code == 204


async def test_creating_a_stream_returns_its_forwarding_address_and_set_up(account, inbox_gateway, tap):
    topic = await make_topic(account.admin)
    stream = await make_stream(account.admin, topic["id"], "Support@ACME.com", allow_agent_send=False)
    assert {"id", "topic_id", "address", "allow_agent_send", "forwarding_address", "status", "setup"} <= set(stream)
    assert stream["address"] == "support@acme.com"
    assert stream["allow_agent_send"] is False
    assert stream["status"] == "awaiting_mail"
    assert FORWARDING_ADDRESS.fullmatch(stream["forwarding_address"])
    providers = {p["provider"]: p for p in stream["setup"]["providers"]}
    assert providers["gmail"]["method"] == "forward"
    assert providers["outlook"]["method"] == "redirect"
    assert "customer" in providers["outlook"]["reason"] and "sender" in providers["outlook"]["reason"]
    assert any(stream["forwarding_address"] in step for step in providers["outlook"]["steps"])
    assert "other" in providers

    event = await tap.next_matching(StreamChanged, lambda e: e.stream_id == stream["id"])
    assert event.change == "created"
    assert (event.account_id, event.topic_id) == (account.account_id, topic["id"])
    assert event.forwarding_address == stream["forwarding_address"]
    assert event.address == "support@acme.com"
    assert event.allow_agent_send is False

    stored = await inbox_gateway.db["streams"].find_one({"_id": stream["id"]})
    assert stored["forwarding_address"] == stream["forwarding_address"]
    assert stored["deleted"] is False


async def test_forwarding_addresses_are_unique_across_streams_and_accounts(account, other_account):
    addresses = set()
    for owner in (account, other_account):
        topic = await make_topic(owner.admin)
        for i in range(5):
            stream = await make_stream(owner.admin, topic["id"], f"help{i}@acme.com")
            addresses.add(stream["forwarding_address"])
    assert len(addresses) == 10


async def test_patch_and_delete_publish_stream_changed(account, tap):
    topic = await make_topic(account.admin)
    stream = await make_stream(account.admin, topic["id"])
    await tap.next_matching(StreamChanged, lambda e: e.stream_id == stream["id"] and e.change == "created")

    patched = await account.admin.patch(
        f"/v1/streams/{stream['id']}", json={"address": "Help@Acme.com", "allow_agent_send": False}
    )
    assert patched.status_code == 200, patched.text
    assert (patched.json()["address"], patched.json()["allow_agent_send"]) == ("help@acme.com", False)
    assert patched.json()["forwarding_address"] == stream["forwarding_address"]
    updated = await tap.next_matching(StreamChanged, lambda e: e.stream_id == stream["id"])
    assert (updated.change, updated.address, updated.allow_agent_send) == ("updated", "help@acme.com", False)

    assert (await account.admin.delete(f"/v1/streams/{stream['id']}")).status_code == 204
    deleted = await tap.next_matching(StreamChanged, lambda e: e.stream_id == stream["id"])
    assert deleted.change == "deleted"
    assert deleted.forwarding_address == stream["forwarding_address"]
    assert (await account.admin.get(f"/v1/streams/{stream['id']}")).status_code == 404
    assert (await account.admin.delete(f"/v1/streams/{stream['id']}")).status_code == 404


async def test_stream_brand_template_and_signature(account):
    topic = await make_topic(account.admin)
    stream = await make_stream(account.admin, topic["id"], display_name="Acme Support")
    template = {"html": "<div>{{ content }}</div><p>Acme</p>", "text": "{{ content }}\n-- Acme"}
    patched = await account.admin.patch(
        f"/v1/streams/{stream['id']}", json={"template": template, "signature": "Alice, Acme"}
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["template"] == template
    assert patched.json()["display_name"] == "Acme Support"
    missing = await account.admin.patch(
        f"/v1/streams/{stream['id']}", json={"template": {"html": "<p>no placeholder</p>", "text": "{{ content }}"}}
    )
    assert missing.status_code == 422
    assert missing.json()["detail"][0]["loc"][:2] == ["body", "template"]
    cleared = await account.admin.patch(f"/v1/streams/{stream['id']}", json={"template": None})
    assert cleared.json()["template"] is None
    assert cleared.json()["signature"] == "Alice, Acme"


async def test_duplicate_live_address_in_an_account_is_409(account, other_account):
    topic = await make_topic(account.admin)
    await make_stream(account.admin, topic["id"], "dup@acme.com")
    again = await account.admin.post(f"/v1/topics/{topic['id']}/streams", json={"address": "DUP@acme.com"})
    assert again.status_code == 409
    other_topic = await make_topic(other_account.admin)
    await make_stream(other_account.admin, other_topic["id"], "dup@acme.com")  # another account may


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("address", "support@acme.com\r\nBcc: victim@example.com"),
        ("address", "not an address"),
        ("display_name", "Acme\r\nBcc: victim@example.com"),
        ("display_name", "Acme\nSupport"),
        ("allow_agent_send", "maybe"),
    ],
)
async def test_bad_stream_payloads_are_422_naming_the_field(account, field, value):
    topic = await make_topic(account.admin)
    body = {"address": "support@acme.com", field: value}
    response = await account.admin.post(f"/v1/topics/{topic['id']}/streams", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["body", field]


async def test_crlf_in_header_bound_fields_is_refused_on_update_too(account):
    topic = await make_topic(account.admin)
    stream = await make_stream(account.admin, topic["id"])
    for field, value in (("display_name", "A\r\nB"), ("address", "a@acme.com\nX: y")):
        response = await account.admin.patch(f"/v1/streams/{stream['id']}", json={field: value})
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"] == ["body", field]
    topic_name = await account.admin.post("/v1/topics", json={"name": "x\r\ny"})
    assert topic_name.json()["detail"][0]["loc"] == ["body", "name"]
    null_address = await account.admin.patch(f"/v1/streams/{stream['id']}", json={"address": None})
    assert null_address.status_code == 422


async def test_verify_forwarding_asks_sender_for_a_test_mail_and_the_result_shows(account, inbox_gateway, tap):
    topic = await make_topic(account.admin)
    stream = await make_stream(account.admin, topic["id"], "support@acme.com")
    assert (await account.agent.post(f"/v1/streams/{stream['id']}/verify-forwarding")).status_code == 403
    response = await account.admin.post(f"/v1/streams/{stream['id']}/verify-forwarding")
    assert response.status_code == 202, response.text
    assert response.json()["sent_to"] == "support@acme.com"

    request = await tap.next_matching(ReplyRequested, lambda e: e.stream_id == stream["id"])
    assert request.kind == "forwarding_test"
    assert [a.address for a in request.to] == ["support@acme.com"]
    assert request.from_.address == "forwarding-check@in.mailstream.test"
    assert request.subject == "Mailstream forwarding check"
    token = request.extra_headers["X-Mailstream-Forwarding-Test"]
    assert f"mailstream-forwarding-test:{token}" in request.text
    assert re.fullmatch(r"[0-9a-f]{32}", request.message_id)
    assert request.message_id_header == f"<{request.message_id}@in.mailstream.test>"
    assert request.account_id == account.account_id
    assert request.requested_by.startswith("agent:")
    assert request.conversation_id is None

    pending = (await account.admin.get(f"/v1/streams/{stream['id']}")).json()
    assert pending["forwarding_check"]["pending"] is True
    assert pending["forwarding_verified"] is False

    # what the store consumer does when the mail comes back through an Outlook *forward* rule
    assert not await streams_repo.mark_forwarding_verified(inbox_gateway.db, stream["id"], "wrong-token", "redirect")
    assert await streams_repo.mark_forwarding_verified(inbox_gateway.db, stream["id"], token, "forward_inline")
    assert await streams_repo.mark_forwarding_verified(inbox_gateway.db, stream["id"], token, "forward_inline")
    verified = (await account.agent.get(f"/v1/streams/{stream['id']}")).json()
    assert verified["forwarding_verified"] is True
    check = verified["forwarding_check"]
    assert (check["pending"], check["verified"], check["method"]) == (False, True, "forward_inline")
    assert "Redirect" in check["advice"]


async def test_first_mail_and_provider_confirmation_show_on_the_stream(account, inbox_gateway):
    topic = await make_topic(account.admin)
    stream = await make_stream(account.admin, topic["id"])
    await streams_repo.record_provider_confirmation(
        inbox_gateway.db,
        stream["id"],
        {"provider": "gmail", "code": "123456789", "link": "https://mail.google.com/mail/vf-abc", "requested_by": "x"},
    )
    await streams_repo.mark_receiving(inbox_gateway.db, stream["id"])
    await streams_repo.mark_receiving(inbox_gateway.db, stream["id"])
    shown = (await account.admin.get(f"/v1/streams/{stream['id']}")).json()
    assert shown["status"] == "receiving"
    assert shown["first_mail_at"] is not None
    assert shown["provider_confirmation"]["code"] == "123456789"
    assert shown["provider_confirmation"]["link"].startswith("https://mail.google.com/")


async def test_streams_list_pages_with_cursors_and_filters_by_topic(account):
    first, second = await make_topic(account.admin, "one"), await make_topic(account.admin, "two")
    made = [await make_stream(account.admin, first["id"], f"s{i}@acme.com") for i in range(5)]
    await make_stream(account.admin, second["id"], "other@acme.com")
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 2, "topic_id": first["id"], **({"cursor": cursor} if cursor else {})}
        body = (await account.agent.get("/v1/streams", params=params)).json()
        pages += 1
        seen.extend(s["id"] for s in body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == [s["id"] for s in made]
    assert pages == 3
    by_topic = (await account.agent.get(f"/v1/topics/{second['id']}/streams")).json()
    assert [s["address"] for s in by_topic["items"]] == ["other@acme.com"]
    everything = (await account.agent.get("/v1/streams", params={"limit": 200})).json()
    assert len(everything["items"]) == 6


@pytest.mark.parametrize("limit", [0, 201, "x"])
async def test_bad_limits_and_cursors_are_422(account, limit):
    response = await account.admin.get("/v1/topics", params={"limit": limit})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "limit"]
    response = await account.admin.get("/v1/topics", params={"cursor": "garbage"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "cursor"]


async def test_a_well_formed_cursor_with_foreign_values_is_422_not_a_query(account):
    from mailstream_common.pages import encode_cursor

    forged = encode_cursor({"created_at": "2026-01-01", "_id": {"$ne": ""}})
    response = await account.admin.get("/v1/streams", params={"cursor": forged})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "cursor"]
