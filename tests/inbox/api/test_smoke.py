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
