"""Every platform route: 401 without a valid key, 404 for another account's ids (never 403 or data), 403 for role."""

import pytest

ID_ROUTES = [
    ("GET", "/v1/topics/{topic}", None),
    ("PATCH", "/v1/topics/{topic}", {"name": "mine now"}),
    ("DELETE", "/v1/topics/{topic}", None),
    ("POST", "/v1/topics/{topic}/streams", {"address": "steal@acme.com"}),
    ("GET", "/v1/topics/{topic}/streams", None),
    ("GET", "/v1/streams/{stream}", None),
    ("PATCH", "/v1/streams/{stream}", {"allow_agent_send": True}),
    ("DELETE", "/v1/streams/{stream}", None),
    ("POST", "/v1/streams/{stream}/verify-forwarding", None),
    ("GET", "/v1/api-keys/{key}", None),
    ("DELETE", "/v1/api-keys/{key}", None),
]
LIST_ROUTES = [("GET", "/v1/topics", None), ("GET", "/v1/streams", None), ("GET", "/v1/api-keys", None)]
OTHER_ROUTES = [
    ("GET", "/v1/me", None),
    ("POST", "/v1/api-keys", {"role": "agent", "name": "x"}),
    ("POST", "/v1/topics", {"name": "x"}),
    ("GET", "/v1/events", None),
    ("POST", "/v1/events/tickets", None),
    ("GET", "/v1/domains", None),
    ("POST", "/v1/automation/rules", {}),
    ("GET", "/v1/suppressions", None),
]
ADMIN_ONLY = [
    ("POST", "/v1/api-keys", {"role": "agent", "name": "x"}),
    ("GET", "/v1/api-keys", None),
    ("GET", "/v1/api-keys/{key}", None),
    ("DELETE", "/v1/api-keys/{key}", None),
    ("POST", "/v1/topics", {"name": "x"}),
    ("PATCH", "/v1/topics/{topic}", {"name": "x"}),
    ("DELETE", "/v1/topics/{topic}", None),
    ("POST", "/v1/topics/{topic}/streams", {"address": "a@acme.com"}),
    ("PATCH", "/v1/streams/{stream}", {"allow_agent_send": True}),
    ("DELETE", "/v1/streams/{stream}", None),
    ("POST", "/v1/streams/{stream}/verify-forwarding", None),
    ("POST", "/v1/domains", {"name": "acme.com"}),
    ("DELETE", "/v1/automation/rules/abc", None),
    ("DELETE", "/v1/suppressions/x", None),
]


async def resources_of(owner) -> dict[str, str]:
    topic = (await owner.admin.post("/v1/topics", json={"name": "Private"})).json()
    stream = (await owner.admin.post(f"/v1/topics/{topic['id']}/streams", json={"address": "own@globex.com"})).json()
    return {"topic": topic["id"], "stream": stream["id"], "key": owner.agent_key_id}


@pytest.mark.parametrize(("method", "path", "body"), ID_ROUTES + LIST_ROUTES + OTHER_ROUTES)
async def test_no_or_bad_key_is_401(anonymous, method, path, body):
    url = path.format(topic="0" * 32, stream="0" * 32, key="0" * 32)
    async with anonymous:
        for headers in ({}, {"Authorization": "Bearer ms_wrongwrongwrongwrongwrongwrongwrong"}):
            response = await anonymous.request(method, url, json=body, headers=headers)
            assert response.status_code == 401, (method, url, response.text)


async def test_another_accounts_ids_are_404_on_every_route_and_nothing_changes(account, other_account):
    theirs = await resources_of(other_account)
    for method, path, body in ID_ROUTES:
        url = path.format(**theirs)
        response = await account.admin.request(method, url, json=body)
        assert response.status_code == 404, (method, url, response.status_code, response.text)
        assert response.json() == {"detail": response.json()["detail"]}
        missing = await account.admin.request(
            method, path.format(topic="f" * 32, stream="f" * 32, key="f" * 32), json=body
        )
        assert (missing.status_code, missing.json()) == (404, response.json()), "indistinguishable from a missing id"
    for client in (account.admin, account.agent):
        for _, path, _ in LIST_ROUTES:
            response = await client.get(path)
            if response.status_code == 403:
                continue
            listed = str(response.json())
            assert theirs["topic"] not in listed and theirs["stream"] not in listed and theirs["key"] not in listed
        filtered = await client.get("/v1/streams", params={"topic_id": theirs["topic"]})
        assert filtered.json()["items"] == []
    # the owner still sees everything unchanged and its key still works
    stream = (await other_account.agent.get(f"/v1/streams/{theirs['stream']}")).json()
    assert stream["address"] == "own@globex.com"
    assert stream["forwarding_check"]["pending"] is False
    assert (await other_account.agent.get(f"/v1/topics/{theirs['topic']}")).json()["name"] == "Private"


async def test_agent_keys_get_403_on_admin_routes_of_their_own_account(account):
    mine = await resources_of(account)
    for method, path, body in ADMIN_ONLY:
        url = path.format(**mine)
        response = await account.agent.request(method, url, json=body)
        assert response.status_code == 403, (method, url, response.status_code, response.text)
    assert (await account.agent.get(f"/v1/streams/{mine['stream']}")).status_code == 200
