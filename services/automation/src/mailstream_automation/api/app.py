"""The FastAPI app: the rule API plus /healthz, /readyz, /metrics on the same port."""

from collections.abc import Mapping

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import ConnectionFailure

from mailstream_common.correlation import CorrelationId
from mailstream_common.http_apps import install_allow_header
from mailstream_common.ops import ReadinessCheck, ops_routes

from .. import metrics  # the service's own metrics are on /metrics from the start
from ..settings import AutomationSettings
from .routes import rules, runs

DESCRIPTION = """Automation rules ("recipes"): conditions on each inbound message and the actions the inbox then
applies (auto-reply with a canned response, tags, assignee, status, priority).

Text comparisons ignore case. `matches` is a regular expression searched anywhere in the text (case-insensitive;
`(?-i)` makes it case-sensitive) under a small time budget. Multi-valued fields (`to`, `cc`, a repeated header)
hold for a positive operator when any value matches and for `not_equals`/`not_contains` when none does. Rules run in
`position` order; a fired rule with `stop_processing` ends the evaluation. Auto-replies are never sent to automatic
mail (Auto-Submitted, Precedence bulk/junk/list, List-Id, autoresponders, null/daemon/no-reply senders) and at most
once per rule and customer per interval (24 h by default); each run records what was held back and why."""


def create_app(settings: AutomationSettings, db: AsyncDatabase, checks: Mapping[str, ReadinessCheck]) -> FastAPI:
    app = FastAPI(title="Mailstream automation", version="1.0.0", description=DESCRIPTION, routes=ops_routes(checks))
    app.state.settings = settings
    app.state.service_callers = settings.service_callers  # only the gateway's token opens the rule API
    app.state.db = db
    app.state.metrics = metrics
    app.include_router(rules.router)
    app.include_router(runs.router)
    install_allow_header(app)
    app.add_middleware(CorrelationId)

    @app.exception_handler(ConnectionFailure)
    async def _database_down(_: Request, __: ConnectionFailure) -> JSONResponse:
        return JSONResponse(
            {"detail": "the database is unavailable, try again"}, status_code=503, headers={"Retry-After": "5"}
        )

    return app
