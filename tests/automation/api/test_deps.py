"""The caller dependency: only the gateway's token with an account and a known role opens the rule API."""

import httpx
import pytest

from tests.automation.conftest import ApiServer
from tests.automation.support import rule
from tests.support.service_tokens import GATEWAY_TOKEN

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Internal-Token": "wrong", "X-Account-Id": "a", "X-Role": "admin"},
        {"X-Account-Id": "a", "X-Role": "admin"},
        {"X-Internal-Token": GATEWAY_TOKEN, "X-Role": "admin"},
        {"X-Internal-Token": GATEWAY_TOKEN, "X-Account-Id": "a", "X-Role": "root"},
    ],
)
async def test_requests_without_the_gateways_token_and_tenant_are_refused(api: ApiServer, headers):
    async with httpx.AsyncClient(base_url=api.base_url, headers=headers) as client:
        assert (await client.get("/v1/automation/rules")).status_code == 401
        assert (await client.post("/v1/automation/rules", json=rule())).status_code == 401
    assert await api.db["automation_rules"].count_documents({}) == 0
