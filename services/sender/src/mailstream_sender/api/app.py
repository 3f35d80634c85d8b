"""The sender's HTTP app: the suppression list (public paths, proxied by the gateway, trusting only the gateway's
credential, see mailstream_common.service_auth) and /healthz, /readyz, /metrics."""

from collections.abc import Mapping

from fastapi import FastAPI

from mailstream_common.correlation import CorrelationId
from mailstream_common.http_apps import install_allow_header
from mailstream_common.ops import ReadinessCheck, ops_routes

from ..repositories.suppressions import Suppressions
from .routes import suppressions as suppression_routes


def create_app(
    suppressions: Suppressions, service_callers: Mapping[str, str], checks: Mapping[str, ReadinessCheck]
) -> FastAPI:
    """`service_callers`: caller name -> SHA-256 of its token (only the gateway's opens these routes)."""
    app = FastAPI(title="Mailstream sender", version="1")
    app.state.service_callers = dict(service_callers)
    app.state.suppressions = suppressions
    app.add_middleware(CorrelationId)  # the gateway's X-Correlation-Id reaches the sender's log lines
    install_allow_header(app)
    app.include_router(suppression_routes.router)
    app.router.routes.extend(ops_routes(checks))
    return app
