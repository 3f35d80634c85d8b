"""`/v1/webhooks` over real HTTP: the secret shown once and stored sealed, validation, roles, tenant isolation."""

import pytest

from mailstream_inbox.webhooks import repositories as webhooks_repo

BODY = {"url": "https://crm.example.com/hooks/mailstream", "event_types": ["message.received"], "description": "CRM"}


async def test_create_shows_the_secret_once_and_stores_it_sealed(account, inbox_gateway):
    created = await account.admin.post("/v1/webhooks", json=BODY)
    assert created.status_code == 201, created.text
    hook = created.json()
    assert hook["secret"].startswith("whsec_") and hook["enabled"] is True and hook["failing_since"] is None
    fetched = (await account.admin.get(f"/v1/webhooks/{hook['id']}")).json()
    assert "secret" not in fetched and fetched["url"] == BODY["url"]
    listed = (await account.admin.get("/v1/webhooks")).json()
    assert [h["id"] for h in listed["items"]] == [hook["id"]] and "secret" not in listed["items"][0]
    stored = await webhooks_repo.get_subscription_for_sending(inbox_gateway.db, hook["id"])
    assert hook["secret"] not in str(stored)
    assert inbox_gateway.app.state.webhook_secrets.open(stored["secret_sealed"]) == hook["secret"]


async def test_update_rotate_and_delete(account, inbox_gateway):
    hook = (await account.admin.post("/v1/webhooks", json=BODY)).json()
    changed = await account.admin.patch(
        f"/v1/webhooks/{hook['id']}",
        json={"enabled": False, "event_types": ["conversation.updated", "conversation.created"], "description": "x"},
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["enabled"] is False
    assert changed.json()["event_types"] == ["conversation.created", "conversation.updated"]
    rotated = await account.admin.post(f"/v1/webhooks/{hook['id']}/secret/rotate")
    assert rotated.status_code == 200 and rotated.json()["secret"] != hook["secret"]
    assert "previous_secret_valid_until" in rotated.json()
    stored = await webhooks_repo.get_subscription_for_sending(inbox_gateway.db, hook["id"])
    box = inbox_gateway.app.state.webhook_secrets
    assert box.open(stored["secret_sealed"]) == rotated.json()["secret"]
    assert box.open(stored["previous_secret_sealed"]) == hook["secret"]  # still signs during the grace period
    assert "previous_secret_sealed" not in (await account.admin.get(f"/v1/webhooks/{hook['id']}")).text
    assert (await account.admin.delete(f"/v1/webhooks/{hook['id']}")).status_code == 204
    assert (await account.admin.get(f"/v1/webhooks/{hook['id']}")).status_code == 404


async def test_another_accounts_webhook_is_404_everywhere_and_agents_are_403(account, other_account):
    hook = (await account.admin.post("/v1/webhooks", json=BODY)).json()
    base = f"/v1/webhooks/{hook['id']}"
    other = other_account.admin
    assert (await other.get(base)).status_code == 404
    assert (await other.patch(base, json={"enabled": False})).status_code == 404
    assert (await other.delete(base)).status_code == 404
    assert (await other.post(f"{base}/secret/rotate")).status_code == 404
    assert (await other.get(f"{base}/deliveries")).status_code == 404
    assert (await other.get(f"{base}/deliveries/msg_0")).status_code == 404
    assert (await other.post(f"{base}/deliveries/msg_0/replay")).status_code == 404
    assert (await other.get("/v1/webhooks")).json()["items"] == []
    assert (await account.agent.get("/v1/webhooks")).status_code == 403
    assert (await account.agent.post("/v1/webhooks", json=BODY)).status_code == 403
    assert (await account.admin.get(base)).json()["enabled"] is True  # untouched by the other account


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**BODY, "url": "ftp://crm.example.com/x"}, "url"),
        ({**BODY, "url": "https://user:pw@crm.example.com/x"}, "url"),
        ({**BODY, "event_types": []}, "event_types"),
        ({**BODY, "event_types": ["message.deleted"]}, "event_types"),
        ({**BODY, "url": "http://127.0.0.1:9/x"}, "url"),
        ({**BODY, "url": "http://169.254.169.254/latest/meta-data"}, "url"),
        ({**BODY, "url": "http://localhost:8080/x"}, "url"),
        ({**BODY, "extra": 1}, "extra"),
    ],
)
async def test_bad_subscriptions_are_422_naming_the_field(account, body, field):
    response = await account.admin.post("/v1/webhooks", json=body)
    assert response.status_code == 422, response.text
    assert any(field in detail["loc"] for detail in response.json()["detail"]), response.text


async def test_private_destinations_are_accepted_when_the_operator_allows_them(account, private_destinations_allowed):
    response = await account.admin.post("/v1/webhooks", json={**BODY, "url": "http://127.0.0.1:9/x"})
    assert response.status_code == 201, response.text


async def test_the_event_types_are_listed_with_examples(account):
    types = (await account.admin.get("/v1/webhook-event-types")).json()
    assert {t["type"] for t in types} == {
        "conversation.created",
        "conversation.updated",
        "conversation.merged",
        "message.received",
        "message.sent",
        "message.delivery_changed",
        "stream.status_changed",
        "domain.verification_changed",
    }
    assert all(t["example"]["type"] == t["type"] for t in types)
