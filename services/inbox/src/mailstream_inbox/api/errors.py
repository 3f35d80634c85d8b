"""Error responses shared by every route.

Bodies are FastAPI's: `{"detail": "..."}`, and for 422 `{"detail": [{"loc": [...], "msg": ..., "type": ...}]}`
(the `loc` names the field). Use `not_found()` for any id that is missing *or belongs to another account*, so the
two are indistinguishable; `forbidden()` only for a role that may not do something in its own account.
"""

import logging

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from pymongo.errors import ConnectionFailure, ServerSelectionTimeoutError

from mailstream_common.broker import PublishError

from ..repositories.pages import CursorMismatch

log = logging.getLogger(__name__)

NOT_FOUND_RESPONSE = {404: {"description": "No such id in this account (another account's ids are 404 too)"}}
AUTH_RESPONSES = {
    401: {"description": "Missing, invalid or revoked API key"},
    403: {"description": "The key's role may not do this"},
}
BAD_REQUEST_RESPONSE = {
    400: {
        "description": "Malformed request: a body that is not UTF-8 JSON, or a path the gateway refuses (dot segments,"
        " encoded slashes, control characters)"
    }
}
#: What any route of the gateway may answer besides its own statuses (the `responses=` of every router).
COMMON_RESPONSES = {**BAD_REQUEST_RESPONSE, **AUTH_RESPONSES}


def not_found(what: str = "resource") -> HTTPException:
    return HTTPException(404, detail=f"{what} not found")


def forbidden(detail: str = "this operation needs an admin key") -> HTTPException:
    return HTTPException(403, detail=detail)


def conflict(detail: str) -> HTTPException:
    return HTTPException(409, detail=detail)


def field_error(location: tuple[str, ...] | list[str], message: str, status_code: int = 422) -> HTTPException:
    """A 422 in FastAPI's validation shape for checks that need the database (e.g. an unknown canned response)."""
    return HTTPException(
        status_code, detail=[{"type": "value_error", "loc": list(location), "msg": message, "input": None}]
    )


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(CursorMismatch)
    async def _cursor_mismatch(request: Request, exc: CursorMismatch) -> JSONResponse:
        return JSONResponse(
            {"detail": [{"type": "value_error", "loc": ["query", "cursor"], "msg": str(exc), "input": None}]},
            status_code=422,
        )

    @app.exception_handler(PublishError)
    async def _publish_failed(request: Request, exc: PublishError) -> JSONResponse:
        log.error("broker did not confirm a publish", extra={"path": request.url.path, "error": str(exc)})
        return JSONResponse(
            {"detail": "the message broker is unavailable; nothing was queued, try again"},
            status_code=503,
            headers={"Retry-After": "5"},
        )

    @app.exception_handler(ServerSelectionTimeoutError)
    @app.exception_handler(ConnectionFailure)
    async def _database_down(request: Request, exc: Exception) -> JSONResponse:
        log.error("database unavailable", extra={"path": request.url.path, "error": type(exc).__name__})
        return JSONResponse(
            {"detail": "the database is unavailable, try again"}, status_code=503, headers={"Retry-After": "5"}
        )
