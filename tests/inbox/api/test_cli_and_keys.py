"""Accounts and API keys: the CLI's first admin key, key roles, hashed storage, listing and revocation."""

import asyncio
import json
import os
import sys
from pathlib import Path

import httpx
import pytest

from mailstream_inbox import cli
from mailstream_inbox.repositories.api_keys import hash_key


def cli_env(gateway) -> dict[str, str]:
    return {
        "MONGODB_URI": gateway.settings.mongodb_uri.get_secret_value(),
        "MONGODB_DATABASE": gateway.settings.mongodb_database,
    }


async def run_cli_in_process(gateway, monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    """The CLI's `main` in this process (its own event loop, in a worker thread): fast, same code as the script."""
    for name, value in cli_env(gateway).items():
        monkeypatch.setenv(name, value)
    code = await asyncio.wait_for(asyncio.to_thread(cli.main, list(args)), 60)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


async def test_the_mailstream_script_creates_an_account_whose_admin_key_works_over_http(
    inbox_gateway, monkeypatch, capsys
):
    script = Path(sys.executable).with_name("mailstream")
    process = await asyncio.create_subprocess_exec(
        str(script),
        "accounts",
        "create",
        "--name",
        "Acme Corp",
        env={**os.environ, **cli_env(inbox_gateway)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, stderr.decode()
    lines = stdout.decode().strip().splitlines()
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

    code, out, _ = await run_cli_in_process(
        inbox_gateway,
        monkeypatch,
        capsys,
        "api-keys",
        "create",
        "--account",
        result["account_id"],
        "--role",
        "agent",
        "--name",
        "Bo",
    )
    assert code == 0
    agent_key = json.loads(out)
    code, out, _ = await run_cli_in_process(
        inbox_gateway, monkeypatch, capsys, "api-keys", "list", "--account", result["account_id"]
    )
    keys = [json.loads(line) for line in out.splitlines()]
    assert {k["role"] for k in keys} == {"admin", "agent"}
    assert all("api_key" not in k for k in keys)
    assert agent_key["id"] in {k["id"] for k in keys}

    code, out, _ = await run_cli_in_process(inbox_gateway, monkeypatch, capsys, "accounts", "list")
    assert result["account_id"] in {json.loads(line)["account_id"] for line in out.splitlines()}


async def test_cli_help_lists_the_commands_and_refuses_unknown_accounts(inbox_gateway, monkeypatch, capsys):
    with pytest.raises(SystemExit) as exited:
        cli.main(["--help"])
    assert exited.value.code == 0
    helped = capsys.readouterr().out
    for command in ("accounts", "api-keys", "topics", "streams"):
        assert command in helped
    code, out, err = await run_cli_in_process(
        inbox_gateway, monkeypatch, capsys, "streams", "list", "--account", "0" * 32
    )
    assert code == 1
    assert "no account" in err
    assert out == ""


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


async def test_oversized_request_bodies_are_413(inbox_gateway, account, monkeypatch):
    limit = inbox_gateway.settings.max_request_bytes
    big = {"role": "agent", "name": "x" * (limit + 10)}
    declared = await account.admin.post("/v1/api-keys", json=big)
    assert declared.status_code == 413
    assert "larger than" in declared.json()["detail"]

    async def chunks():
        yield b'{"role": "agent", "name": "'
        for _ in range(limit // 65536 + 2):
            yield b"x" * 65536
        yield b'"}'

    streamed = await account.admin.post("/v1/api-keys", content=chunks(), headers={"Content-Type": "application/json"})
    assert streamed.status_code == 413
    assert (await account.admin.get("/v1/me")).status_code == 200
