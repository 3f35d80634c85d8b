"""The data-request and retention routes over real HTTP (the in-process gateway with its consumers; the other
services are not running here, so a request stays `running` with only inbox's part done: what a user sees while a
service is down)."""

from tests.support.waiting import wait_for

PERSON = "Zoe.Person@Example.org"


async def test_only_admins_ask_and_bad_input_is_named(make_account):
    account = await make_account("DP validation")
    for method, path, body in (
        ("POST", "/v1/data-requests", {"type": "erase", "address": PERSON}),
        ("GET", "/v1/data-requests", None),
        ("GET", "/v1/data-requests/abc", None),
        ("GET", "/v1/data-requests/abc/archive", None),
        ("PUT", "/v1/retention", {"messages_days": 30}),
        ("GET", "/v1/retention", None),
    ):
        assert (await account.agent.request(method, path, json=body)).status_code == 403, path
    for body, field in (
        ({"type": "erase", "address": "not an address"}, "address"),
        ({"type": "forget", "address": PERSON}, "type"),
        ({"type": "erase", "address": "a@b.com\r\nBcc: x@y.z"}, "address"),
    ):
        response = await account.admin.post("/v1/data-requests", json=body)
        assert response.status_code == 422 and field in str(response.json()["detail"][0]["loc"]), response.text
    assert (await account.admin.put("/v1/retention", json={"messages_days": 0})).status_code == 422
    assert (await account.admin.put("/v1/retention", json={"messages_days": 36501})).status_code == 422


async def test_a_running_request_is_answered_again_and_is_invisible_to_another_account(make_account):
    account, other = await make_account("DP owner"), await make_account("DP other")
    created = await account.admin.post("/v1/data-requests", json={"type": "erase", "address": PERSON})
    assert created.status_code == 201, created.text
    request = created.json()
    assert request["status"] == "running" and request["address_domain"] == "example.org"
    assert PERSON.lower() not in created.text.lower()
    again = await account.admin.post("/v1/data-requests", json={"type": "erase", "address": PERSON.lower()})
    assert again.status_code == 200 and again.json()["id"] == request["id"]
    export = await account.admin.post("/v1/data-requests", json={"type": "export", "address": PERSON})
    assert export.status_code == 201 and export.json()["id"] != request["id"]

    async def inbox_part_done():
        body = (await account.admin.get(f"/v1/data-requests/{request['id']}")).json()
        parts = {p["service"]: p["status"] for p in body["services"]}
        return body if parts["inbox"] == "done" else None

    body = await wait_for(inbox_part_done, timeout=15, what="inbox's part reported")
    assert body["status"] == "running"  # the other services are not running here
    assert {p["service"] for p in body["services"] if p["status"] == "pending"} == {
        "ingest",
        "automation",
        "sender",
        "domains",
    }
    for path in (f"/v1/data-requests/{request['id']}", f"/v1/data-requests/{export.json()['id']}/archive"):
        assert (await other.admin.get(path)).status_code == 404
    assert (await other.admin.get("/v1/data-requests")).json()["items"] == []
    assert (await account.admin.get(f"/v1/data-requests/{request['id']}/archive")).status_code == 404  # an erasure
    assert (await account.admin.get(f"/v1/data-requests/{export.json()['id']}/archive")).status_code == 409
    listed = (await account.admin.get("/v1/data-requests", params={"limit": 1})).json()
    assert [r["id"] for r in listed["items"]] == [export.json()["id"]] and listed["next_cursor"]
    following = (await account.admin.get("/v1/data-requests", params={"cursor": listed["next_cursor"]})).json()
    assert [r["id"] for r in following["items"]] == [request["id"]]


async def test_retention_is_set_and_cleared_per_account(make_account):
    account, other = await make_account("DP retention"), await make_account("DP retention other")
    assert (await account.admin.get("/v1/retention")).json() == {"messages_days": None}
    assert (await account.admin.put("/v1/retention", json={"messages_days": 365})).json() == {"messages_days": 365}
    assert (await account.admin.get("/v1/retention")).json() == {"messages_days": 365}
    assert (await other.admin.get("/v1/retention")).json() == {"messages_days": None}
    assert (await account.admin.put("/v1/retention", json={"messages_days": None})).json() == {"messages_days": None}


async def test_the_openapi_documents_the_resource_with_examples(make_account):
    account = await make_account("DP openapi")
    schemas = (await account.admin.get("/openapi.json")).json()["components"]["schemas"]
    assert {"erase", "export"} <= {e["type"] for e in schemas["DataRequestCreate"]["examples"]}
    assert schemas["DataRequestPublic"]["examples"][0]["services"]
    assert schemas["Retention"]["examples"][0] == {"messages_days": 365}
