"""The suppression routes in-process against the real database: pages with the shared opaque cursor (a bad cursor
is 422), and a write through the API reaching the repository the guard's cache listens to."""

from collections.abc import AsyncIterator
from uuid import uuid4

import httpx
import pytest

from mailstream_common.mongo import ensure_indexes
from mailstream_sender.api.app import create_app
from mailstream_sender.repositories import INDEXES
from mailstream_sender.repositories.suppressions import Suppressions
from tests.support.service_tokens import GATEWAY_TOKEN, callers

pytestmark = pytest.mark.integration


@pytest.fixture
async def suppressions(mongo_db) -> Suppressions:
    await ensure_indexes(mongo_db, INDEXES)
    return Suppressions(mongo_db)


@pytest.fixture
async def api(suppressions) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(suppressions, callers(), {})
    headers = {"X-Internal-Token": GATEWAY_TOKEN, "X-Account-Id": "acct-" + uuid4().hex[:8], "X-Role": "admin"}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sender", headers=headers) as client:
        yield client


async def test_pages_follow_the_opaque_cursor_in_address_order(api):
    addresses = [f"user{n}@example.net" for n in (3, 1, 4, 2, 5)]
    for address in addresses:
        assert (await api.post("/v1/suppressions", json={"address": address})).status_code == 201
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await api.get("/v1/suppressions", params=params)).json()
        seen += [item["address"] for item in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert "@" not in cursor  # opaque, not the raw address
    assert seen == sorted(addresses) and pages == 3


@pytest.mark.parametrize("cursor", ["user1@example.net", "e30.000000000000", "not-a-cursor"])
async def test_a_bad_cursor_is_422(api, cursor):
    response = await api.get("/v1/suppressions", params={"cursor": cursor})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "cursor"]


async def test_a_write_through_the_api_notifies_the_repository_listeners(api, suppressions):
    changed: list[str] = []
    suppressions.on_change.append(changed.append)
    await api.post("/v1/suppressions", json={"address": "kana@example.net"})
    assert (await api.delete("/v1/suppressions/kana@example.net")).status_code == 204
    assert len(changed) == 2
