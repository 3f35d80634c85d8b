"""The rule API over real HTTP against a real database: CRUD, roles, tenant isolation, validation, order, pages,
dry runs."""

import pytest

from mailstream_automation.repositories import KnownReferencesRepository
from mailstream_common.contracts import CannedResponseChanged, StreamChanged, TopicChanged
from tests.automation.conftest import ApiServer
from tests.automation.support import REFUND, TAG, account, create, error_locs, rule

pytestmark = pytest.mark.integration


async def test_create_get_update_delete(api: ApiServer):
    async with api.client(account()) as client:
        created = await create(client, stop_processing=True)
        assert len(created["id"]) == 32
        assert created["position"] == 0 and created["enabled"] is True and created["match"] == "all"
        assert created["conditions"] == [REFUND] and created["actions"] == [TAG]

        fetched = await client.get(f"/v1/automation/rules/{created['id']}")
        assert fetched.status_code == 200 and fetched.json() == created

        patched = await client.patch(
            f"/v1/automation/rules/{created['id']}",
            json={"enabled": False, "actions": [{"type": "set_priority", "priority": "high"}]},
        )
        assert patched.status_code == 200, patched.text
        body = patched.json()
        assert body["enabled"] is False and body["actions"] == [{"type": "set_priority", "priority": "high"}]
        assert body["conditions"] == [REFUND] and body["stop_processing"] is True  # untouched fields stay
        assert body["updated_at"] >= created["updated_at"]

        assert (await client.delete(f"/v1/automation/rules/{created['id']}")).status_code == 204
        assert (await client.get(f"/v1/automation/rules/{created['id']}")).status_code == 404
        assert (await client.delete(f"/v1/automation/rules/{created['id']}")).status_code == 404


async def test_another_accounts_rule_is_404_everywhere(api: ApiServer):
    async with api.client(account()) as owner, api.client(account()) as other:
        mine = await create(owner)
        path = f"/v1/automation/rules/{mine['id']}"
        assert (await other.get(path)).status_code == 404
        assert (await other.patch(path, json={"enabled": False})).status_code == 404
        assert (await other.delete(path)).status_code == 404
        assert (await other.get(f"{path}/runs")).status_code == 404
        test = await other.post("/v1/automation/rules/test", json={"rule_id": mine["id"], "message": {}})
        assert test.status_code == 404
        assert (await other.get("/v1/automation/rules")).json() == {"items": [], "next_cursor": None}
        assert (await owner.get(path)).json()["enabled"] is True  # nothing changed


async def test_agents_may_read_but_not_write(api: ApiServer):
    tenant = account()
    async with api.client(tenant, "admin") as admin, api.client(tenant, "agent") as agent:
        existing = await create(admin)
        path = f"/v1/automation/rules/{existing['id']}"
        assert (await agent.post("/v1/automation/rules", json=rule())).status_code == 403
        assert (await agent.patch(path, json={"enabled": False})).status_code == 403
        assert (await agent.delete(path)).status_code == 403
        assert (await agent.get(path)).status_code == 200
        assert (await agent.get("/v1/automation/rules")).json()["items"][0]["id"] == existing["id"]
        assert (await agent.get(f"{path}/runs")).status_code == 200
        assert (await admin.get(path)).json()["enabled"] is True


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        (
            rule(conditions=[{"field": "sender", "operator": "equals", "value": "x"}]),
            ["body", "conditions", 0, "field"],
        ),
        (
            rule(conditions=[REFUND, {"field": "subject", "operator": "like", "value": "x"}]),
            ["body", "conditions", 1, "operator"],
        ),
        (
            rule(conditions=[{"field": "body", "operator": "matches", "value": "(["}]),
            ["body", "conditions", 0, "value"],
        ),
        (
            rule(
                conditions=[
                    {
                        "field": "received_at",
                        "operator": "within_hours",
                        "value": {"timezone": "Asia/Tokio", "days": ["mon"], "from": "09:00", "to": "18:00"},
                    }
                ]
            ),
            ["body", "conditions", 0, "value"],
        ),
        (rule(actions=[{"type": "add_tags"}]), ["body", "actions", 0, "add_tags", "tags"]),
        (rule(actions=[{"type": "teleport"}]), ["body", "actions", 0]),
        (rule(actions=[]), ["body", "actions"]),
        (rule(name=""), ["body", "name"]),
        (rule(match="most"), ["body", "match"]),
        (rule(position=-1), ["body", "position"]),
        (rule(colour="red"), ["body", "colour"]),
        ({"conditions": [], "actions": [TAG]}, ["body", "name"]),
    ],
)
async def test_invalid_rules_are_422_naming_the_field(api: ApiServer, body, loc):
    async with api.client(account()) as client:
        response = await client.post("/v1/automation/rules", json=body)
        assert loc in error_locs(response)
    assert await api.db["automation_rules"].count_documents({}) == 0


async def test_invalid_patch_is_422_and_changes_nothing(api: ApiServer):
    async with api.client(account()) as client:
        existing = await create(client)
        path = f"/v1/automation/rules/{existing['id']}"
        assert ["body", "name"] in error_locs(await client.patch(path, json={"name": None}))
        assert ["body", "enabled"] in error_locs(await client.patch(path, json={"enabled": None}))
        bad_regex = {"conditions": [{"field": "subject", "operator": "matches", "value": "(?<"}]}
        assert ["body", "conditions", 0, "value"] in error_locs(await client.patch(path, json=bad_regex))
        assert ["body", "unknown"] in error_locs(await client.patch(path, json={"unknown": 1}))
        assert (await client.get(path)).json() == existing


async def test_topic_streams_and_canned_responses_must_be_the_callers_own(api: ApiServer):
    tenant, stranger = account(), account()
    # What automation knows of inbox's catalogue: its own projection, as the *.changed events leave it.
    known = KnownReferencesRepository(api.db)

    def topic(topic_id: str, account_id: str, deleted: bool = False) -> TopicChanged:
        return TopicChanged(
            change="created", version=1, account_id=account_id, topic_id=topic_id, name="t", deleted=deleted
        )

    def stream(stream_id: str, account_id: str, topic_id: str, deleted: bool = False) -> StreamChanged:
        return StreamChanged(
            change="created", version=1, account_id=account_id, topic_id=topic_id, stream_id=stream_id,
            address="s@acme.test", forwarding_address=f"{stream_id}@in.test", allow_agent_send=True, deleted=deleted,
        )  # fmt: skip

    for event in (
        topic("topic-mine", tenant),
        topic("topic-theirs", stranger),
        topic("topic-gone", tenant, deleted=True),
        stream("stream-mine", tenant, "topic-mine"),
        stream("stream-other-topic", tenant, "topic-2"),
        stream("stream-gone", tenant, "topic-mine", deleted=True),
        stream("stream-theirs", stranger, "topic-theirs"),
    ):
        await known.apply(event)
    async with api.client(tenant) as client:
        ok = await create(client, topic_id="topic-mine", stream_ids=["stream-mine"])
        assert ok["topic_id"] == "topic-mine" and ok["stream_ids"] == ["stream-mine"]
        cases = [
            ({"topic_id": "topic-theirs"}, ["body", "topic_id"]),
            ({"topic_id": "nope"}, ["body", "topic_id"]),
            ({"topic_id": "topic-gone"}, ["body", "topic_id"]),
            ({"stream_ids": ["stream-mine", "stream-theirs"]}, ["body", "stream_ids", 1]),
            ({"stream_ids": ["stream-gone"]}, ["body", "stream_ids", 0]),
            ({"topic_id": "topic-mine", "stream_ids": ["stream-other-topic"]}, ["body", "stream_ids", 0]),
        ]
        for scope, loc in cases:
            assert error_locs(await client.post("/v1/automation/rules", json=rule(**scope))) == [loc], scope
        patch = await client.patch(f"/v1/automation/rules/{ok['id']}", json={"stream_ids": ["stream-theirs"]})
        assert error_locs(patch) == [["body", "stream_ids", 0]]

        for canned_id, owner in (("canned-mine", tenant), ("canned-theirs", stranger)):
            await known.apply(
                CannedResponseChanged(change="created", version=1, account_id=owner, canned_response_id=canned_id)
            )
        reply = {"type": "auto_reply", "canned_response_id": "canned-mine"}
        await create(client, actions=[TAG, reply])
        theirs = rule(actions=[TAG, reply | {"canned_response_id": "canned-theirs"}])
        response = await client.post("/v1/automation/rules", json=theirs)
        assert error_locs(response) == [["body", "actions", 1, "canned_response_id"]]


async def test_position_orders_rules_and_moves_the_others(api: ApiServer):
    async with api.client(account()) as client:
        a = await create(client, name="a")
        b = await create(client, name="b")
        c = await create(client, name="c", position=0)  # inserted first

        async def order() -> list[tuple[str, int]]:
            items = (await client.get("/v1/automation/rules")).json()["items"]
            return [(r["name"], r["position"]) for r in items]

        assert await order() == [("c", 0), ("a", 1), ("b", 2)]
        moved = await client.patch(f"/v1/automation/rules/{c['id']}", json={"position": 99})
        assert moved.json()["position"] == 2
        assert await order() == [("a", 0), ("b", 1), ("c", 2)]
        await client.patch(f"/v1/automation/rules/{b['id']}", json={"position": 0})
        assert await order() == [("b", 0), ("a", 1), ("c", 2)]
        await client.delete(f"/v1/automation/rules/{b['id']}")
        assert await order() == [("a", 0), ("c", 1)]
        assert a["position"] == 0


async def test_lists_are_paged_with_a_cursor(api: ApiServer):
    async with api.client(account()) as client:
        names = [f"rule {i}" for i in range(5)]
        for name in names:
            await create(client, name=name, enabled=name != "rule 3")
        seen, cursor = [], None
        while True:
            params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
            page = (await client.get("/v1/automation/rules", params=params)).json()
            assert len(page["items"]) <= 2
            seen += [r["name"] for r in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == names
        disabled = (await client.get("/v1/automation/rules", params={"enabled": "false"})).json()["items"]
        assert [r["name"] for r in disabled] == ["rule 3"]
        assert ["query", "limit"] in error_locs(await client.get("/v1/automation/rules", params={"limit": 201}))
        assert ["query", "limit"] in error_locs(await client.get("/v1/automation/rules", params={"limit": 0}))
        assert ["query", "cursor"] in error_locs(await client.get("/v1/automation/rules", params={"cursor": "abc.def"}))


async def test_dry_run_explains_a_draft_or_saved_rule(api: ApiServer):
    async with api.client(account(), "agent") as agent, api.client(account()) as admin:
        draft = rule(
            match="all",
            conditions=[REFUND, {"field": "header:X-Priority", "operator": "starts_with", "value": "1"}],
            actions=[{"type": "auto_reply", "canned_response_id": "c1"}, TAG],
        )
        message = {
            "from": "kana@example.net",
            "subject": "Refund please",
            "headers": [{"name": "X-Priority", "value": "1"}],
        }
        result = await agent.post("/v1/automation/rules/test", json={"rule": draft, "message": message})
        assert result.status_code == 200, result.text
        body = result.json()
        assert body["fired"] is True
        assert [c["matched"] for c in body["matched_conditions"]] == [True, True]
        assert body["actions"][0]["type"] == "auto_reply" and body["skipped_actions"] == []

        bulk = message | {"headers": [{"name": "X-Priority", "value": "1"}, {"name": "Precedence", "value": "bulk"}]}
        body = (await agent.post("/v1/automation/rules/test", json={"rule": draft, "message": bulk})).json()
        assert body["actions"] == [TAG]
        assert body["skipped_actions"][0]["reason"].startswith("precedence")

        body = (
            await agent.post("/v1/automation/rules/test", json={"rule": draft, "message": {"subject": "Hi"}})
        ).json()
        assert body["fired"] is False and body["actions"] == []
        assert body["matched_conditions"][0]["why"] == 'subject "Hi" does not contain "refund"'

        saved = await create(admin)
        body = (await admin.post("/v1/automation/rules/test", json={"rule_id": saved["id"], "message": message})).json()
        assert body["fired"] is True and body["actions"] == [TAG]
        assert ["body"] in error_locs(await admin.post("/v1/automation/rules/test", json={"message": message}))
        bad = {"rule": rule(conditions=[{"field": "x", "operator": "is", "value": 1}]), "message": message}
        assert ["body", "rule", "conditions", 0, "field"] in error_locs(
            await admin.post("/v1/automation/rules/test", json=bad)
        )
