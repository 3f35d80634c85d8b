"""The app: what each role serves, ops routes, the caller and its correlation id."""

from pathlib import Path


def test_roles_decide_what_the_process_serves():
    from mailstream_inbox.api.app import create_app
    from mailstream_inbox.settings import InboxSettings

    def api_paths(role: str) -> set[str]:
        return set(create_app(InboxSettings(INBOX_ROLE=role)).openapi()["paths"])

    worker = create_app(InboxSettings(INBOX_ROLE="worker"))
    assert {"/healthz", "/readyz", "/metrics"} <= {getattr(r, "path", "") for r in worker.routes}
    assert api_paths("worker") == set()
    for role in ("api", "all"):
        assert {"/v1/topics", "/v1/events", "/v1/conversations", "/v1/streams/{stream_id}"} <= api_paths(role)
    assert InboxSettings(INBOX_ROLE="worker").runs_consumers and not InboxSettings(INBOX_ROLE="api").runs_consumers


async def test_gateway_serves_ops_and_me(inbox_gateway, account, anonymous):
    async with anonymous:
        assert (await anonymous.get("/healthz")).status_code == 200
        ready = await anonymous.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"] == {"database": True, "broker": True}
        assert (await anonymous.get("/v1/me")).status_code == 401
    me = await account.admin.get("/v1/me")
    assert me.json()["role"] == "admin"
    me = await account.agent.get("/v1/me", headers={"X-Correlation-Id": "abc-123"})
    assert me.json()["role"] == "agent"
    assert me.headers["x-correlation-id"] == "abc-123"
    generated = await account.agent.get("/v1/me", headers={"X-Correlation-Id": "bad id with spaces"})
    assert generated.headers["x-correlation-id"] != "bad id with spaces"


COMMITTED_ASYNCAPI = (Path(__file__).resolve().parents[3] / "docs" / "asyncapi.json").read_text()


async def test_gateway_serves_the_broker_contract_next_to_openapi(inbox_gateway, anonymous):
    async with anonymous:
        response = await anonymous.get("/asyncapi.json")
        openapi = await anonymous.get("/openapi.json")
    assert openapi.status_code == 200
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.text == COMMITTED_ASYNCAPI
    assert response.json()["asyncapi"].startswith("3.")
