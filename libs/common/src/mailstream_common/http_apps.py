"""What every FastAPI app of Mailstream answers the same way: a 405 whose `Allow` lists every method of the path.

Starlette answers 405 with the methods of the first route whose path matched, but FastAPI registers one route per
method, so `OPTIONS /v1/topics` said `Allow: POST` although GET works too. This handler collects the methods of
every route whose path matches.
"""

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import Match

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(app: FastAPI, scope: dict) -> list[str]:
    """The methods some route fully matches for this path: asked of the routes themselves (included routers
    match on behalf of theirs), so nothing depends on how the router stores them."""
    return [
        method
        for method in METHODS
        if any(
            route.matches({**scope, "type": "http", "method": method})[0] == Match.FULL for route in app.router.routes
        )
    ]


def install_allow_header(app: FastAPI) -> None:
    async def handler(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 405:
            methods = allowed_methods(app, request.scope)
            if methods:
                exc.headers = {**(exc.headers or {}), "Allow": ", ".join(methods)}
        return await http_exception_handler(request, exc)

    app.add_exception_handler(StarletteHTTPException, handler)  # type: ignore[arg-type]
