"""The app: ops routes on the API's port and an OpenAPI document with examples and no internal headers."""

import httpx
import pytest

from tests.automation.conftest import ApiServer

pytestmark = pytest.mark.integration


async def test_ops_routes_and_documented_openapi(api: ApiServer):
    async with httpx.AsyncClient(base_url=api.base_url) as client:
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        assert (await client.get("/readyz")).status_code == 200
        assert "mailstream_automation_rules_evaluated_total" in (await client.get("/metrics")).text
        spec = (await client.get("/openapi.json")).json()
    paths = spec["paths"]
    assert set(paths) >= {
        "/v1/automation/rules",
        "/v1/automation/rules/{rule_id}",
        "/v1/automation/rules/{rule_id}/runs",
        "/v1/automation/rules/test",
        "/v1/automation/runs",
    }
    assert set(paths["/v1/automation/rules/{rule_id}"]) == {"get", "patch", "delete"}
    create_body = paths["/v1/automation/rules"]["post"]["requestBody"]["content"]["application/json"]
    assert "auto_reply_out_of_hours" in create_body["examples"]
    assert "urgent_refunds" in create_body["examples"]
    assert "examples" in paths["/v1/automation/rules/{rule_id}"]["patch"]["requestBody"]["content"]["application/json"]
    action_types = set(
        spec["components"]["schemas"]["RuleCreate"]["properties"]["actions"]["items"]["discriminator"]["mapping"]
    )
    assert action_types == {"auto_reply", "add_tags", "remove_tags", "assign", "set_status", "set_priority"}
    assert not any("x-internal-token" in str(op).lower() for op in paths.values())
