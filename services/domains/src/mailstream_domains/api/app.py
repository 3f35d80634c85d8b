"""The domains HTTP app: the public domain paths (reached only through the gateway), the sender's signing-key
path, and ops. Who may call what is in `deps`."""

from collections.abc import Mapping

from fastapi import FastAPI

from mailstream_common.correlation import CorrelationId
from mailstream_common.http_apps import install_allow_header
from mailstream_common.ops import ReadinessCheck, ops_routes

from ..manager import DomainManager
from .routes import domains, signing_key


def create_app(
    manager: DomainManager, service_callers: Mapping[str, str], checks: Mapping[str, ReadinessCheck]
) -> FastAPI:
    """`service_callers`: caller name -> SHA-256 of its token (`CommonSettings.service_callers`)."""
    app = FastAPI(
        title="Mailstream domains",
        version="1",
        description="Sending domains: DKIM keys, the SPF/DKIM/DMARC records to publish and their live verification.",
    )
    app.state.manager = manager
    app.state.service_callers = dict(service_callers)
    install_allow_header(app)
    app.add_middleware(CorrelationId)
    app.include_router(domains.router)
    app.include_router(signing_key.router)
    app.router.routes.extend(ops_routes(checks))
    return app
