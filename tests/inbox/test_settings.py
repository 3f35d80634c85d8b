"""Inbox settings read from the environment: the threading window is a real setting."""

import pytest

from mailstream_inbox.settings import InboxSettings


@pytest.mark.parametrize(("env", "days"), [(None, 14.0), ("3", 3.0), ("0.5", 0.5)])
def test_threading_window_days(monkeypatch: pytest.MonkeyPatch, env: str | None, days: float) -> None:
    if env is None:
        monkeypatch.delenv("INBOX_THREADING_WINDOW_DAYS", raising=False)
    else:
        monkeypatch.setenv("INBOX_THREADING_WINDOW_DAYS", env)
    assert InboxSettings().threading_window_days == days


def test_threading_window_must_be_positive(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INBOX_THREADING_WINDOW_DAYS", "0")
    with pytest.raises(ValueError):
        InboxSettings()
