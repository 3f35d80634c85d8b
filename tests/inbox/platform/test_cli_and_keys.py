"""Accounts and API keys: the CLI's first admin key, key roles, hashed storage, listing and revocation."""

import json
import os
import subprocess
import sys

import httpx

from mailstream_inbox.repositories.api_keys import hash_key


def run_cli(gateway, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "MONGODB_URI": gateway.settings.mongodb_uri.get_secret_value(),
        "MONGODB_DATABASE": gateway.settings.mongodb_database,
    }
    return subprocess.run(
        [sys.executable, "-m", "mailstream_inbox.cli", *args], env=env, capture_output=True, text=True, timeout=60
    )


async def test_cli_creates_an_account_whose_admin_key_works_over_http(inbox_gateway):
    created = run_cli(inbox_gateway, "accounts", "create", "--name", "Acme Corp")
    assert created.returncode == 0, created.stderr
    lines = created.stdout.strip().splitlines()
    assert len(lines) == 1, "exactly one JSON object on stdout"
    result = json.loads(lines[0])
    assert set(result) == {"account_id", "api_key"}
    async with httpx.AsyncClient(
        base_url=inbox_gateway.base_url, headers={"Authorization": f"Bearer {result['api_key']}"}
    ) as client:
        me = (await client.get("/v1/me")).json()
    assert me["account_id"] == result["account_id"]
    assert me["role"] == "admin"
    assert me["account_name"] == "Acme Corp"

    agent = run_cli(
        inbox_gateway, "api-keys", "create", "--account", result["account_id"], "--role", "agent", "--name", "Bo"
    )
    assert agent.returncode == 0, agent.stderr
    agent_key = json.loads(agent.stdout)
    listed = run_cli(inbox_gateway, "api-keys", "list", "--account", result["account_id"])
    keys = [json.loads(line) for line in listed.stdout.splitlines()]
    assert {k["role"] for k in keys} == {"admin", "agent"}
    assert all("api_key" not in k for k in keys)
    assert agent_key["id"] in {k["id"] for k in keys}

    accounts = [json.loads(line) for line in run_cli(inbox_gateway, "accounts", "list").stdout.splitlines()]
    assert result["account_id"] in {a["account_id"] for a in accounts}


def test_cli_help_lists_the_commands_and_refuses_unknown_accounts(inbox_gateway):
    helped = run_cli(inbox_gateway, "--help")
    assert helped.returncode == 0
    for command in ("accounts", "api-keys", "topics", "streams"):
        assert command in helped.stdout
    missing = run_cli(inbox_gateway, "streams", "list", "--account", "0" * 32)
    assert missing.returncode == 1
    assert "no account" in missing.stderr
    assert missing.stdout == ""


async def test_keys_are_stored_only_as_a_hash(inbox_gateway, account):
    created = await account.admin.post("/v1/api-keys", json={"role": "agent", "name": "Carol"})
    assert created.status_code == 201
    body = created.json()
    assert body["api_key"].startswith("ms_") and len(body["api_key"]) >= 40
    assert body["role"] == "agent"
    stored = await inbox_gateway.db["api_keys"].find_one({"_id": body["id"]})
    assert stored["key_hash"] == hash_key(body["api_key"])
    assert body["api_key"] not in json.dumps(stored, default=str)
    assert stored["prefix"] == body["api_key"][:10]
    # no document of the collection holds any plaintext key
    async for doc in inbox_gateway.db["api_keys"].find({"account_id": account.account_id}):
        text = json.dumps(doc, default=str)
        assert account.admin_key not in text and account.agent_key not in text and body["api_key"] not in text


async def test_listing_keys_never_shows_them_and_pages_with_a_cursor(account):
    for i in range(3):
        assert (await account.admin.post("/v1/api-keys", json={"role": "agent", "name": f"k{i}"})).status_code == 201
    seen, cursor = [], None
    while True:
        page = await account.admin.get("/v1/api-keys", params={"limit": 2, **({"cursor": cursor} if cursor else {})})
        assert page.status_code == 200
        body = page.json()
        assert len(body["items"]) <= 2
        seen.extend(body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 5  # admin + agent of the fixture + three
    assert len({k["id"] for k in seen}) == 5
    assert all("api_key" not in k and "key_hash" not in k for k in seen)


async def test_a_revoked_key_is_refused_at_once(inbox_gateway, account):
    created = (await account.admin.post("/v1/api-keys", json={"role": "agent", "name": "temp"})).json()
    async with httpx.AsyncClient(
        base_url=inbox_gateway.base_url, headers={"Authorization": f"Bearer {created['api_key']}"}
    ) as client:
        assert (await client.get("/v1/topics")).status_code == 200
        assert (await account.admin.delete(f"/v1/api-keys/{created['id']}")).status_code == 204
        refused = await client.get("/v1/topics")
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"] == "Bearer"
    assert (await account.admin.get(f"/v1/api-keys/{created['id']}")).json()["revoked"] is True


async def test_bad_keys_are_401(anonymous):
    async with anonymous:
        for headers in (
            {},
            {"Authorization": "Bearer"},
            {"Authorization": "Bearer ms_not-a-real-key-at-all-0000000000"},
            {"Authorization": "Basic dXNlcjpwYXNz"},
            {"Authorization": "Bearer " + "x" * 5000},
        ):
            response = await anonymous.get("/v1/topics", headers=headers)
            assert response.status_code == 401, headers
            assert "detail" in response.json()


async def test_agents_cannot_manage_keys(account):
    assert (await account.agent.post("/v1/api-keys", json={"role": "admin", "name": "escalate"})).status_code == 403
    assert (await account.agent.get("/v1/api-keys")).status_code == 403
    assert (await account.agent.delete(f"/v1/api-keys/{account.agent_key_id}")).status_code == 403


async def test_key_payloads_are_validated(account):
    bad_role = await account.admin.post("/v1/api-keys", json={"role": "owner", "name": "x"})
    assert bad_role.status_code == 422
    assert bad_role.json()["detail"][0]["loc"] == ["body", "role"]
    crlf = await account.admin.post("/v1/api-keys", json={"role": "agent", "name": "x\r\nX-Evil: 1"})
    assert crlf.status_code == 422
    assert crlf.json()["detail"][0]["loc"] == ["body", "name"]
