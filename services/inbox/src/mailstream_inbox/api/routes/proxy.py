"""Domains, automation and suppressions: the public operations of the services that own them, forwarded by
allow-list (mailstream_common.public_api), never by prefix.

The gateway authenticates the API key, normalises the raw request path once (dot segments, encoded slashes,
control characters... are refused before anything is forwarded), matches method and path against the public
operations, applies the role rule (agents may read, only admins may write), and calls the upstream at the path
built from the matched template. It adds the headers the services trust: its own credential in
`X-Internal-Token` (which opens the upstreams' public routes only, see mailstream_common.service_auth),
`X-Account-Id`, `X-Role`, `X-Key-Id` (and `X-Correlation-Id`). The upstreams' `/openapi.json` documents are
merged into the gateway's for the allowed operations only (see `merged_openapi`).
"""

import asyncio
import copy
import logging
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from starlette.requests import ClientDisconnect

from mailstream_common import logs
from mailstream_common.public_api import (
    PREFIXES,
    PUBLIC_OPERATIONS,
    MethodRefused,
    PathRefused,
    match,
    split_path,
)
from mailstream_common.service_auth import GATEWAY_HEADERS

from ..deps import CurrentPrincipal, SettingsDep
from ..errors import forbidden

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Upstream:
    name: str
    prefix: str
    settings_field: str


UPSTREAMS = tuple(Upstream(name, prefix, f"{name}_url") for name, prefix in PREFIXES.items())

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
FORWARDED_REQUEST_HEADERS = ("content-type", "accept", "accept-language", "if-none-match", "if-match")
FORWARDED_RESPONSE_HEADERS = ("content-type", "location", "cache-control", "etag", "retry-after", "link")
INTERNAL_HEADERS = frozenset(GATEWAY_HEADERS)
OPENAPI_RETRY_SECONDS = 30.0
OPENAPI_REFRESH_SECONDS = 300.0
# Every method reaches the handler, so that a refused path or method gets the gateway's own 400/404/405.
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]

router = APIRouter(tags=["proxied"])

GATEWAY_RESPONSES = {
    "400": {"description": "A path the gateway refuses (dot segments, encoded slashes, control characters...)"},
    "401": {"description": "Missing, invalid or revoked API key"},
    "403": {"description": "The key's role may not do this (changes need an admin key)"},
    "404": {"description": "No such resource in this account"},
    "502": {"description": "The service behind this path is unavailable"},
    "504": {"description": "The service behind this path did not answer in time"},
}


def raw_path_of(request: Request) -> bytes:
    """The path as it came on the wire (ASGI `raw_path`); the decoded `path` hides %2f, %2e and the like."""
    raw = request.scope.get("raw_path")
    if raw:
        return raw.split(b"?", 1)[0]
    return quote(request.scope["path"], safe="/:@!$&'()*+,=-._~").encode()


def upstream_headers(request: Request, principal, gateway_token: str) -> dict[str, str]:
    headers = {name: request.headers[name] for name in FORWARDED_REQUEST_HEADERS if name in request.headers}
    headers.update(
        {
            "X-Internal-Token": gateway_token,
            "X-Account-Id": principal.account_id,
            "X-Role": principal.role,
            "X-Key-Id": principal.key_id,
            "X-Correlation-Id": logs.correlation_id.get() or logs.new_correlation_id(),
        }
    )
    return headers


async def forward(request: Request, principal, settings) -> Response:
    try:
        matched = match(request.method, split_path(raw_path_of(request)))
    except PathRefused as refused:
        if refused.status == 400:
            log.warning("proxy path refused", extra={"reason": refused.reason, "account_id": principal.account_id})
        return JSONResponse({"detail": refused.reason}, status_code=refused.status)
    except MethodRefused as refused:
        return JSONResponse(
            {"detail": "Method Not Allowed"}, status_code=405, headers={"Allow": ", ".join(refused.allow)}
        )
    upstream = next(u for u in UPSTREAMS if u.name == matched.operation.service)
    if request.method not in READ_METHODS and principal.role != "admin":
        raise forbidden(f"only admin keys may change {upstream.prefix.removeprefix('/v1/')}")
    base = getattr(settings, upstream.settings_field).rstrip("/")
    client: httpx.AsyncClient = request.app.state.http
    try:
        body = await request.body()
    except ClientDisconnect:  # the caller gave up (its timeout): nothing to forward, nobody to answer
        return Response(status_code=400)
    try:
        upstream_response = await client.request(
            request.method,
            base + matched.upstream_path,
            params=list(request.query_params.multi_items()),
            content=body,
            headers=upstream_headers(request, principal, settings.gateway_token.get_secret_value()),
        )
    except httpx.TimeoutException:
        log.warning("upstream timed out", extra={"upstream": upstream.name, "path": matched.operation.template})
        return JSONResponse({"detail": f"the {upstream.name} service did not answer in time"}, status_code=504)
    except httpx.TransportError as exc:
        log.warning("upstream unreachable", extra={"upstream": upstream.name, "error": type(exc).__name__})
        return JSONResponse({"detail": f"the {upstream.name} service is unavailable"}, status_code=502)
    headers = {
        name: upstream_response.headers[name]
        for name in FORWARDED_RESPONSE_HEADERS
        if name in upstream_response.headers
    }
    return Response(upstream_response.content, status_code=upstream_response.status_code, headers=headers)


def _add_routes(upstream: Upstream) -> None:
    async def proxied(request: Request, principal: CurrentPrincipal, settings: SettingsDep) -> Response:
        return await forward(request, principal, settings)

    proxied.__name__ = f"proxy_{upstream.name}"
    router.add_api_route(upstream.prefix, proxied, methods=METHODS, include_in_schema=False)
    router.add_api_route(upstream.prefix + "/{path:path}", proxied, methods=METHODS, include_in_schema=False)


for _upstream in UPSTREAMS:
    _add_routes(_upstream)


# --- OpenAPI: the gateway's schema plus the public paths of the proxied services ---


def _rewrite_refs(node: Any, renames: dict[str, str]) -> Any:
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and value.startswith("#/components/schemas/"):
                name = value.removeprefix("#/components/schemas/")
                out[key] = "#/components/schemas/" + renames.get(name, name)
            else:
                out[key] = _rewrite_refs(value, renames)
        return out
    if isinstance(node, list):
        return [_rewrite_refs(item, renames) for item in node]
    return node


def merge_openapi(base: dict[str, Any], upstream: Upstream, remote: dict[str, Any]) -> dict[str, Any]:
    """Add `remote`'s public paths (under the upstream's prefix) and their schemas to `base` (returns a new dict).

    Schema names already used by the gateway with a different definition are renamed `<Service><Name>`; internal
    headers are dropped from the operations and their security becomes the gateway's bearer key.
    """
    merged = copy.deepcopy(base)
    schemas = merged.setdefault("components", {}).setdefault("schemas", {})
    remote_schemas = remote.get("components", {}).get("schemas", {})
    renames = {
        name: f"{upstream.name.capitalize()}{name}"
        for name, schema in remote_schemas.items()
        if name in schemas and schemas[name] != schema
    }
    for name, schema in remote_schemas.items():
        schemas[renames.get(name, name)] = _rewrite_refs(schema, renames)
    security = [{scheme: []} for scheme in merged.get("components", {}).get("securitySchemes", {})] or None
    allowed = {(op.template, op.method.lower()) for op in PUBLIC_OPERATIONS if op.service == upstream.name}
    for path, item in remote.get("paths", {}).items():
        # Only what the gateway forwards is documented (the allow-list, not the prefix).
        item = {key: value for key, value in item.items() if not isinstance(value, dict) or (path, key) in allowed}
        if not any(isinstance(value, dict) for value in item.values()):
            continue
        item = _rewrite_refs(item, renames)
        for operation in item.values():
            if not isinstance(operation, dict):
                continue
            operation["parameters"] = [
                p
                for p in operation.get("parameters", [])
                if not (p.get("in") == "header" and p.get("name", "").lower() in INTERNAL_HEADERS)
            ]
            if not operation["parameters"]:
                del operation["parameters"]
            if security:
                operation["security"] = security
            # What the gateway itself answers before (or instead of) the upstream.
            responses = operation.setdefault("responses", {})
            for status, response in GATEWAY_RESPONSES.items():
                if status != "404" or "{" in path:
                    responses.setdefault(status, response)
        merged.setdefault("paths", {})[path] = item
    return merged


async def _fetch_openapi(app: FastAPI, upstream: Upstream) -> dict[str, Any] | None:
    settings = app.state.settings
    url = getattr(settings, upstream.settings_field).rstrip("/") + "/openapi.json"
    try:
        response = await app.state.http.get(url, timeout=3.0)  # public document: no credential needed
        if response.status_code == 200:
            return response.json()
        log.warning("upstream openapi unavailable", extra={"upstream": upstream.name, "status": response.status_code})
    except (httpx.HTTPError, ValueError) as exc:
        log.warning("upstream openapi unavailable", extra={"upstream": upstream.name, "error": type(exc).__name__})
    return None


class RemoteOpenApiCache:
    """The proxied services' documents: kept 5 minutes once fetched (they change with their deployments), and
    asked again every 30 s while a service does not answer, so `/openapi.json` stays fast when one is down."""

    def __init__(self) -> None:
        self.documents: dict[str, tuple[dict[str, Any], float]] = {}
        self.failed_at: dict[str, float] = {}

    def wants(self, name: str, now: float) -> bool:
        if name in self.documents:
            return now - self.documents[name][1] >= OPENAPI_REFRESH_SECONDS
        return now - self.failed_at.get(name, -1e9) >= OPENAPI_RETRY_SECONDS

    def store(self, name: str, document: dict[str, Any] | None, now: float) -> None:
        if document is not None:
            self.documents[name] = (document, now)
        elif name in self.documents:  # keep the stale document rather than none, and ask again in 30 s
            stale, _ = self.documents[name]
            self.documents[name] = (stale, now - OPENAPI_REFRESH_SECONDS + OPENAPI_RETRY_SECONDS)
        else:
            self.failed_at[name] = now


async def merged_openapi(app: FastAPI) -> dict[str, Any]:
    """The whole public API: the gateway's own document plus each proxied service's public paths."""
    cache: RemoteOpenApiCache | None = getattr(app.state, "openapi_remote", None)
    if cache is None:
        cache = app.state.openapi_remote = RemoteOpenApiCache()
    now = time.monotonic()
    wanted = [upstream for upstream in UPSTREAMS if cache.wants(upstream.name, now)]
    fetched = await asyncio.gather(*(_fetch_openapi(app, upstream) for upstream in wanted))
    for upstream, remote in zip(wanted, fetched, strict=True):
        cache.store(upstream.name, remote, now)
    document = app.openapi()
    for upstream in UPSTREAMS:
        if upstream.name in cache.documents:
            document = merge_openapi(document, upstream, cache.documents[upstream.name][0])
    return document
