"""The gateway's allow-list against the upstream apps themselves: it lists exactly their public (documented)
operations, and no other route of theirs can be reached through it."""

from typing import Any

import pytest
from fastapi import FastAPI
from starlette.routing import Route

from mailstream_automation.api.app import create_app as automation_app
from mailstream_automation.settings import AutomationSettings
from mailstream_common.public_api import PREFIXES, PUBLIC_OPERATIONS, Operation
from mailstream_domains.api.app import create_app as domains_app
from mailstream_sender.api.app import create_app as sender_app

HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def upstream_apps() -> dict[str, FastAPI]:
    # Only their routes and documents are looked at: nothing is called, so no back-end is needed.
    return {
        "domains": domains_app(object(), {}, {}),  # type: ignore[arg-type]
        "automation": automation_app(AutomationSettings(), None, {}),  # type: ignore[arg-type]
        "sender": sender_app(None, {}, {}),  # type: ignore[arg-type]
    }


def documented_operations(service: str, document: dict[str, Any]) -> set[Operation]:
    return {
        Operation(service, method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }


@pytest.mark.parametrize("service", sorted(PREFIXES))
def test_the_allow_list_is_exactly_each_upstreams_documented_operations(service: str) -> None:
    app = upstream_apps()[service]
    listed = {op for op in PUBLIC_OPERATIONS if op.service == service}
    assert listed == documented_operations(service, app.openapi())
    assert all(op.template.startswith(PREFIXES[service]) for op in listed)


def _segments(template: str) -> list[str]:
    return template.strip("/").split("/")


def _is_param(segment: str) -> bool:
    return segment.startswith("{") and segment.endswith("}")


def could_reach(allowed: Operation, method: str, template: str) -> bool:
    """Whether a forwarded call of `allowed` could land on the route `method template` upstream. The gateway builds
    the upstream path from `allowed`'s template, each parameter one re-encoded segment (no '/', no dot segment), so
    it lands there only if the two templates unify segment by segment."""
    if allowed.method != method:
        return False
    if any(":path}" in s for s in _segments(template)):  # a catch-all route would swallow deeper paths
        prefix = template.split("{", 1)[0].rstrip("/")
        return allowed.template.startswith(prefix)
    ours, theirs = _segments(allowed.template), _segments(template)
    return len(ours) == len(theirs) and all(
        a == b or _is_param(a) or _is_param(b) for a, b in zip(ours, theirs, strict=True)
    )


def every_route(routes: list, prefix: str = "") -> set[tuple[str, str]]:
    """(method, path) of every route, hidden ones included, looking into included routers (FastAPI keeps those
    as one entry that points at the router)."""
    found = set()
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            found |= every_route(inner.routes, prefix + route.include_context.prefix)
        elif isinstance(route, Route) and route.methods:
            found |= {(method, prefix + route.path) for method in route.methods}
    return found


@pytest.mark.parametrize("service", sorted(PREFIXES))
def test_every_other_route_of_each_upstream_is_unreachable_through_the_gateway(service: str) -> None:
    app = upstream_apps()[service]
    allowed = {(op.method, op.template) for op in PUBLIC_OPERATIONS if op.service == service}
    routes = every_route(app.router.routes)
    assert allowed <= routes, "the enumeration must see the public routes too, or it proves nothing"
    others = sorted(routes - allowed)
    assert ("GET", "/readyz") in others and ("GET", "/metrics") in others  # the enumeration sees every route
    if service == "domains":
        assert ("GET", "/internal/signing-key") in others
    reachable = [
        (method, path, op)
        for method, path in others
        for op in PUBLIC_OPERATIONS
        if op.service == service and could_reach(op, method, path)
    ]
    assert not reachable, f"routes of {service} reachable through the gateway but not public: {reachable}"


def test_the_reachability_check_can_fail() -> None:
    """A route the check must flag: same method and a template that unifies with a public one."""
    public = Operation("domains", "GET", "/v1/domains/{domain_id}")
    assert could_reach(public, "GET", "/v1/domains/internal")
    assert not could_reach(public, "GET", "/internal/signing-key")
    assert not could_reach(public, "POST", "/v1/domains/internal")
    assert could_reach(public, "GET", "/v1/{anything:path}")
