"""Domains, automation and suppressions: the allowed operations routed to a real upstream HTTP server, with the
gateway's headers."""

import asyncio
import contextlib
import json

import httpx
import pytest_asyncio
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.inbox.conftest import create_account_with_keys
from tests.support.inbox_gateway import running_gateway
from tests.support.processes import free_port
from tests.support.service_tokens import GATEWAY_TOKEN
from tests.support.waiting import wait_for

UPSTREAM_OPENAPI = {
    "openapi": "3.1.0",
    "info": {"title": "domains", "version": "1"},
    "paths": {
        "/v1/domains": {
            "post": {
                "summary": "Add a sending domain",
                "parameters": [{"in": "header", "name": "X-Internal-Token", "required": True, "schema": {}}],
                "requestBody": {
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/DomainCreate"}}}
                },
                "responses": {"201": {"description": "created"}},
            }
        },
        "/internal/signing-key": {"get": {"responses": {"200": {"description": "secret"}}}},
    },
    "components": {"schemas": {"DomainCreate": {"type": "object", "properties": {"name": {"type": "string"}}}}},
}


async def echo(request: Request) -> Response:
    """Answers with what it received; `?status=` chooses the status, `/slow` takes longer than the gateway waits."""
    if request.url.path.endswith("/slow"):
        await asyncio.sleep(3)
    body = await request.body()
    payload = {
        "method": request.method,
        "path": request.url.path,
        "query": list(request.query_params.multi_items()),
        "body": body.decode("utf-8", "replace"),
        "headers": {k.lower(): v for k, v in request.headers.items()},
    }
    status = int(request.query_params.get("status", "200"))
    return JSONResponse(payload, status_code=status, headers={"Location": "/v1/domains/new", "X-Upstream-Secret": "no"})


async def openapi(request: Request) -> Response:
    return JSONResponse(UPSTREAM_OPENAPI)


@contextlib.asynccontextmanager
async def upstream_server():
    app = Starlette(
        routes=[
            Route("/openapi.json", openapi),
            Route("/{path:path}", echo, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
        ]
    )
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False))
    server.capture_signals = contextlib.nullcontext
    task = asyncio.create_task(server.serve())

    async def started() -> bool:
        return server.started

    await wait_for(started, what="the upstream server to listen")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def proxy_gateway(backends):
    async with (
        upstream_server() as upstream,
        running_gateway(
            backends.amqp_url,
            backends.mongodb_uri,
            f"{backends.database}_inbox",  # shared: its indexes exist already
            INBOX_ROLE="api",
            DOMAINS_URL=upstream,
            AUTOMATION_URL=upstream + "/",
            SENDER_URL=f"http://127.0.0.1:{free_port()}",  # nothing listens: the sender is "down"
            INBOX_PROXY_TIMEOUT_SECONDS="1",
            MAILSTREAM_GATEWAY_TOKEN=GATEWAY_TOKEN,
        ) as gateway,
    ):
        yield gateway


@pytest_asyncio.fixture(loop_scope="session")
async def proxied_account(proxy_gateway):
    account = await create_account_with_keys(proxy_gateway, "Proxied")
    yield account
    await account.admin.aclose()
    await account.agent.aclose()


async def test_requests_are_forwarded_verbatim_with_the_internal_headers(proxied_account):
    raw_body = b'{"name": "acme.com", "dkim_key_bits": 2048}'
    response = await proxied_account.admin.post(
        "/v1/domains",
        params=[("status", "201"), ("tag", "a"), ("tag", "b")],
        content=raw_body,
        headers={"Content-Type": "application/json", "X-Correlation-Id": "corr-123"},
    )
    assert response.status_code == 201
    assert response.headers["location"] == "/v1/domains/new"
    assert "x-upstream-secret" not in response.headers
    seen = response.json()
    assert (seen["method"], seen["path"]) == ("POST", "/v1/domains")
    assert seen["query"] == [["status", "201"], ["tag", "a"], ["tag", "b"]]
    assert seen["body"].encode() == raw_body
    headers = seen["headers"]
    assert headers["x-internal-token"] == GATEWAY_TOKEN
    assert headers["x-account-id"] == proxied_account.account_id
    assert headers["x-role"] == "admin"
    assert headers["x-key-id"]
    assert headers["x-correlation-id"] == "corr-123"
    assert headers["content-type"] == "application/json"
    assert "authorization" not in headers, "the public API key never leaves the gateway"


async def test_nested_paths_statuses_and_agents(proxied_account):
    response = await proxied_account.agent.get("/v1/automation/rules/r1/runs", params={"status": "404"})
    assert response.status_code == 404
    seen = response.json()
    assert seen["path"] == "/v1/automation/rules/r1/runs"
    assert seen["headers"]["x-role"] == "agent"
    assert seen["headers"]["x-key-id"] == proxied_account.agent_key_id
    for method, path in (
        ("POST", "/v1/domains/d1/verify"),
        ("DELETE", "/v1/domains/d1"),
        ("PATCH", "/v1/automation/rules/r1"),
        ("POST", "/v1/suppressions"),
    ):
        refused = await proxied_account.agent.request(method, path)
        assert refused.status_code == 403, method
    # Not a public operation: 405 with the methods the path has, whoever asks; nothing is forwarded.
    for client in (proxied_account.agent, proxied_account.admin):
        wrong = await client.put("/v1/domains/d1/verify")
        assert (wrong.status_code, wrong.headers["allow"]) == (405, "POST")
    rules = await proxied_account.admin.put("/v1/automation/rules")
    assert (rules.status_code, rules.headers["allow"]) == (405, "GET, POST")
    assert (await proxied_account.admin.get("/v1/domains/d1/unknown")).status_code == 404
    deleted = await proxied_account.admin.delete("/v1/domains/d1", params={"status": "204"})
    assert deleted.status_code == 204


async def test_a_service_that_is_down_or_slow_is_a_clear_502_or_504(proxied_account):
    down = await proxied_account.admin.get("/v1/suppressions")
    assert down.status_code == 502
    assert "sender" in down.json()["detail"]
    slow = await proxied_account.admin.get("/v1/domains/slow")
    assert slow.status_code == 504
    assert "domains" in slow.json()["detail"]


async def test_openapi_documents_the_proxied_services_too(proxy_gateway):
    async with httpx.AsyncClient(base_url=proxy_gateway.base_url) as client:
        document = (await client.get("/openapi.json")).json()
        docs = await client.get("/docs")
    assert docs.status_code == 200
    paths = document["paths"]
    assert "/v1/topics/{topic_id}/streams" in paths and "/v1/streams/{stream_id}/verify-forwarding" in paths
    assert "/v1/domains" in paths
    assert "/internal/signing-key" not in paths
    operation = paths["/v1/domains"]["post"]
    assert "parameters" not in operation, "internal headers are not part of the public API"
    assert operation["security"] == [{"HTTPBearer": []}]
    assert "DomainCreate" in document["components"]["schemas"]
    assert json.dumps(document).count("X-Internal-Token") == 0
