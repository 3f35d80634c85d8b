"""The scheduler loop: runs rounds until stopped, and a failed round neither ends the loop nor goes uncounted."""

import asyncio

from mailstream_domains.background_checks import BackgroundVerifier
from mailstream_domains.metrics import VERIFIER_ROUNDS


class Rounds:
    """Stands in for the manager: the second round fails, the others check one domain each."""

    def __init__(self) -> None:
        self.calls = 0
        self.three_done = asyncio.Event()

    async def run_due_checks(self) -> int:
        self.calls += 1
        if self.calls == 3:
            self.three_done.set()
        if self.calls == 2:
            raise RuntimeError("database unavailable")
        return 1


async def test_rounds_continue_after_a_failure_and_stop_on_request() -> None:
    failed, ok = VERIFIER_ROUNDS.labels("failed"), VERIFIER_ROUNDS.labels("ok")
    failed_before, ok_before = failed._value.get(), ok._value.get()
    rounds = Rounds()
    verifier = BackgroundVerifier(rounds, poll_seconds=0.01)  # type: ignore[arg-type]
    verifier.start()
    await asyncio.wait_for(rounds.three_done.wait(), 5)
    await verifier.stop(grace=1)
    calls = rounds.calls
    await asyncio.sleep(0.05)
    assert rounds.calls == calls  # stopped
    assert failed._value.get() == failed_before + 1
    assert ok._value.get() >= ok_before + 2
