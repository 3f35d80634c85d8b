"""Connection errors on a write are retried; any other error is raised at once."""

import pytest
from pymongo.errors import AutoReconnect, DuplicateKeyError, OperationFailure

from mailstream_sender.repositories.retries import with_retries


async def test_connection_errors_are_retried():
    calls = []

    async def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise AutoReconnect("connection closed")
        return "written"

    assert await with_retries(flaky) == "written"
    assert len(calls) == 3


@pytest.mark.parametrize(
    "error", [OperationFailure("unknown operator $foo"), DuplicateKeyError("E11000 duplicate key")]
)
async def test_other_errors_are_raised_at_once(error):
    calls = []

    async def broken():
        calls.append(1)
        raise error

    with pytest.raises(type(error)):
        await with_retries(broken)
    assert len(calls) == 1


async def test_gives_up_after_the_last_attempt():
    async def always_down():
        raise AutoReconnect("connection refused")

    with pytest.raises(AutoReconnect):
        await with_retries(always_down, attempts=3)
