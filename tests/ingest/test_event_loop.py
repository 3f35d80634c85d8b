"""Ingest runs on uvloop unless INGEST_EVENT_LOOP=asyncio, through the common service frame."""

import asyncio
import logging
from collections.abc import Iterator

import pytest
import uvloop

from mailstream_common import service
from mailstream_ingest.main import event_loop_factory
from mailstream_ingest.settings import IngestSettings


@pytest.fixture(autouse=True)
def root_logging_restored() -> Iterator[None]:
    """service.run installs the JSON log handler on the root logger; put pytest's own back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def run_and_report_loop(loop_factory) -> type:
    seen: list[type] = []

    async def main(stop: asyncio.Event) -> None:
        seen.append(type(asyncio.get_running_loop()))

    service.run("test", main, loop_factory=loop_factory)
    return seen[0]


def test_default_setting_is_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("INGEST_EVENT_LOOP", raising=False)
    assert IngestSettings().event_loop == "uvloop"


def test_uvloop_choice_runs_main_on_uvloop() -> None:
    assert run_and_report_loop(event_loop_factory("uvloop")) is uvloop.Loop


def test_asyncio_choice_runs_main_on_asyncios_own_loop() -> None:
    loop_type = run_and_report_loop(event_loop_factory("asyncio"))
    assert loop_type is not uvloop.Loop
    assert issubclass(loop_type, asyncio.BaseEventLoop)


def test_an_unknown_loop_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INGEST_EVENT_LOOP", "trio")
    with pytest.raises(ValueError, match="INGEST_EVENT_LOOP"):
        IngestSettings()
