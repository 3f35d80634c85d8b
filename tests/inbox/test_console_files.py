"""`/console`: the gateway serves the built reference console with its cache headers and Content-Security-Policy,
and says how to build it when the build is absent. No back-end is needed: only the static route is called."""

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from mailstream_inbox.api.app import create_app
from mailstream_inbox.api.console import IMMUTABLE, REVALIDATE, cache_control, default_console_dir
from mailstream_inbox.settings import InboxSettings


def console_client(directory: Path) -> TestClient:
    # Not entered as a context manager: the lifespan (database, broker) is not started, the route needs neither.
    return TestClient(create_app(InboxSettings(INBOX_CONSOLE_DIR=str(directory))))


@pytest.fixture
def built(tmp_path: Path) -> Path:
    (tmp_path / "assets").mkdir()
    (tmp_path / "index.html").write_text('<!doctype html><script type="module" src="/console/assets/app-1a2b.js">')
    (tmp_path / "assets" / "app-1a2b.js").write_text("console.log('hi')")
    return tmp_path


def test_index_is_revalidated_and_hashed_assets_are_immutable(built: Path) -> None:
    client = console_client(built)
    index = client.get("/console/")
    assert index.status_code == 200
    assert index.headers["content-type"].startswith("text/html")
    assert index.headers["cache-control"] == "no-cache"
    asset = client.get("/console/assets/app-1a2b.js")
    assert asset.status_code == 200
    assert asset.headers["cache-control"] == "public, max-age=31536000, immutable"


def test_every_console_response_forbids_inline_script(built: Path) -> None:
    client = console_client(built)
    for path in ("/console/", "/console/assets/app-1a2b.js", "/console/missing.js"):
        policy = client.get(path).headers["content-security-policy"]
        directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
        assert directives["script-src"] == "'self'", path
        assert directives["default-src"] == "'none'"
        assert directives["frame-ancestors"] == "'none'"


def test_console_without_the_slash_redirects(built: Path) -> None:
    response = console_client(built).get("/console", follow_redirects=False)
    assert response.status_code == 308
    assert response.headers["location"] == "/console/"


def test_a_missing_file_is_404_and_never_cached_as_immutable(built: Path) -> None:
    response = console_client(built).get("/console/assets/gone-0000.js")
    assert response.status_code == 404
    assert "immutable" not in response.headers.get("cache-control", "")


def test_paths_cannot_leave_the_console_directory(built: Path) -> None:
    (built.parent / "secret.txt").write_text("secret")
    client = console_client(built)
    for path in ("/console/../secret.txt", "/console/%2e%2e/secret.txt", "/console/assets/..%2f..%2fsecret.txt"):
        response = client.get(path)
        assert "secret" not in response.text, path


def test_without_a_build_the_console_says_how_to_build_it(tmp_path: Path) -> None:
    response = console_client(tmp_path / "nothing-here").get("/console/")
    assert response.status_code == 404
    assert "scripts/build_console.sh" in response.text
    assert "content-security-policy" in response.headers


def test_cache_policy_by_path() -> None:
    assert cache_control("assets/index-CepOKy9Z.js") == IMMUTABLE
    assert cache_control("index.html") == REVALIDATE
    assert cache_control("") == REVALIDATE


def test_the_default_directory_is_this_checkouts_console_build() -> None:
    assert default_console_dir() == Path(__file__).resolve().parents[2] / "console" / "dist"
