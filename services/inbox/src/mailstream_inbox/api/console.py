"""`GET /console/...`: the reference agent console (console/ in the repository), served as static files.

The console is a browser app built only on the public API, so the gateway only hands out its files; nothing here
knows the console's routes. Headers: the Vite build names its assets by content hash, so `/console/assets/*` is
cached for a year as immutable, while `index.html` (which names the current assets) is revalidated on every load.
Every response carries a Content-Security-Policy that allows scripts only from this origin (no inline script, no
eval) and frames only from `srcdoc` (the mail bodies, in a sandboxed frame). When the build is absent, `/console`
answers 404 with how to build it.
"""

from pathlib import Path

from fastapi import FastAPI
from starlette.exceptions import HTTPException
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

# style-src allows inline styles: the sanitised mail HTML shown in the srcdoc frame inherits this policy and keeps
# its style attributes; scripts stay 'self' only (the frame is sandboxed without allow-scripts as well).
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "frame-src 'self' about:",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
        "object-src 'none'",
    )
)
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"

NOT_BUILT = (
    "The Mailstream console is not built.\n"
    "Build it with scripts/build_console.sh (needs Node.js 20 and npm; scripts/run.sh does it for you),\n"
    "or point INBOX_CONSOLE_DIR at a built console (the dist/ folder of console/).\n"
)


def default_console_dir() -> Path:
    """console/dist of the checkout this package runs from (services/inbox/src/mailstream_inbox/api/console.py)."""
    return Path(__file__).resolve().parents[5] / "console" / "dist"


def cache_control(path: str) -> str:
    """Hashed build assets never change under their name; everything else (index.html) is revalidated."""
    return IMMUTABLE if path.startswith("assets/") else REVALIDATE


class ConsoleFiles(StaticFiles):
    """StaticFiles (its path checks: no traversal out of the directory) plus the console's headers."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory=directory, html=True, check_dir=False)
        self.root = directory

    async def check_config(self) -> None:
        # A missing build is answered per request (404 with how to build it), never an error at the first request.
        if self.root.is_dir():
            await super().check_config()

    async def get_response(self, path: str, scope: Scope) -> Response:
        if not (self.root / "index.html").is_file():
            response: Response = PlainTextResponse(NOT_BUILT, status_code=404)
        else:
            try:
                response = await super().get_response(path, scope)
            except HTTPException as refused:  # a missing file (404) or a method other than GET/HEAD (405)
                response = PlainTextResponse(str(refused.detail), refused.status_code, headers=refused.headers)
            if response.status_code < 400:
                response.headers["Cache-Control"] = cache_control(path)
        response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        return response


def install_console(app: FastAPI, directory: str | None) -> None:
    root = Path(directory) if directory else default_console_dir()

    @app.get("/console", include_in_schema=False)
    async def console_root() -> RedirectResponse:
        return RedirectResponse("/console/", status_code=308)

    app.mount("/console/", ConsoleFiles(root), name="console")
