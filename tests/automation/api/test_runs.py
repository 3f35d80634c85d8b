"""Run history over real HTTP: newest first, with reasons, per rule and across rules, paged, per account."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from mailstream_automation.repositories import RunsRepository
from tests.automation.conftest import ApiServer
from tests.automation.support import TAG, account, create, error_locs

pytestmark = pytest.mark.integration


async def test_runs_are_listed_newest_first_with_their_reasons(api: ApiServer):
    tenant = account()
    async with api.client(tenant) as client:
        created = await create(client)
        runs = RunsRepository(api.db)
        start = datetime(2026, 3, 1, tzinfo=UTC)
        for i in range(3):
            await runs.insert_once(
                {
                    "_id": uuid.uuid4().hex,
                    "rule_id": created["id"],
                    "rule_name": created["name"],
                    "account_id": tenant,
                    "message_id": f"m{i}",
                    "conversation_id": "c1",
                    "stream_id": "s1",
                    "customer": "kana@example.net",
                    "fired": i != 1,
                    "match": "all",
                    "matched_conditions": [
                        {"index": 0, "field": "subject", "operator": "contains", "matched": i != 1, "why": f"why {i}"}
                    ],
                    "actions": [TAG] if i != 1 else [],
                    "skipped_actions": [],
                    "published": i != 1,
                    "at": start + timedelta(minutes=i),
                }
            )
        path = f"/v1/automation/rules/{created['id']}/runs"
        first = (await client.get(path, params={"limit": 2})).json()
        assert [r["message_id"] for r in first["items"]] == ["m2", "m1"]
        assert first["items"][0]["matched_conditions"][0]["why"] == "why 2"
        rest = (await client.get(path, params={"limit": 2, "cursor": first["next_cursor"]})).json()
        assert [r["message_id"] for r in rest["items"]] == ["m0"] and rest["next_cursor"] is None
        fired = (await client.get(path, params={"fired": "true"})).json()["items"]
        assert [r["message_id"] for r in fired] == ["m2", "m0"]
        assert fired[0]["rule_name"] == created["name"]

        everything = (await client.get("/v1/automation/runs", params={"conversation_id": "c1"})).json()["items"]
        assert [r["message_id"] for r in everything] == ["m2", "m1", "m0"]
        one = (await client.get("/v1/automation/runs", params={"message_id": "m1"})).json()["items"]
        assert [(r["message_id"], r["fired"]) for r in one] == [("m1", False)]
        for listing in (path, "/v1/automation/runs"):  # pages are bounded: at most 200 runs per request
            assert ["query", "limit"] in error_locs(await client.get(listing, params={"limit": 201}))
    async with api.client(account()) as stranger:
        assert (await stranger.get("/v1/automation/runs", params={"message_id": "m1"})).json()["items"] == []
