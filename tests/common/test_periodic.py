"""`run_every`: a background chore runs at once, again each interval, survives its own failures, stops on request."""

import asyncio

from mailstream_common.periodic import run_every


async def test_a_failing_chore_is_retried_at_the_next_interval_and_the_loop_ends_on_stop():
    stop = asyncio.Event()
    calls: list[int] = []

    async def chore() -> None:
        calls.append(len(calls))
        if len(calls) == 1:
            raise RuntimeError("database unavailable")
        if len(calls) == 3:
            stop.set()

    await asyncio.wait_for(run_every(0.01, stop, chore, name="test chore"), timeout=10)
    assert calls == [0, 1, 2]


async def test_stop_interrupts_the_wait_instead_of_sleeping_out_the_interval():
    stop = asyncio.Event()
    ran = asyncio.Event()

    async def chore() -> None:
        ran.set()

    loop = asyncio.create_task(run_every(3600, stop, chore, name="hourly chore"))
    await asyncio.wait_for(ran.wait(), timeout=10)
    stop.set()
    await asyncio.wait_for(loop, timeout=10)
