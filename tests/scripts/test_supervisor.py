"""The one-machine supervisor (scripts/supervise.py): its restart policy as plain functions, then the real program
running small real child processes that a test kills, breaks and interrupts."""

import os
import signal
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest

from tests.scripts.supervision import SupervisorRun, load_supervise, pid_gone
from tests.support.processes import free_port
from tests.support.waiting import wait_for_sync

supervise = load_supervise()
Policy = supervise.RestartPolicy

# --- the policy ---------------------------------------------------------------------------------------------------

NO_JITTER = 0.5  # the draw in the middle of [0, 1): the delay exactly as the backoff says


def test_the_backoff_doubles_from_one_second_up_to_thirty():
    policy = Policy()
    assert [supervise.backoff_delay(policy, n, NO_JITTER) for n in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]


def test_jitter_stretches_or_shrinks_a_delay_by_at_most_its_fraction():
    policy = Policy(jitter=0.2)
    assert supervise.backoff_delay(policy, 3, 0.0) == pytest.approx(3.2)
    assert supervise.backoff_delay(policy, 3, 0.999999) == pytest.approx(4.8, abs=1e-4)
    assert supervise.backoff_delay(Policy(jitter=0), 3, 0.0) == 4


def test_a_service_that_keeps_crashing_after_it_was_ready_is_restarted_ever_later_but_never_given_up():
    policy, streak, delays = Policy(), supervise.Streak(), []
    for _ in range(10):
        decision = supervise.after_exit(policy, streak, ready_for=5.0, draw=NO_JITTER)
        assert isinstance(decision, supervise.Restart)
        streak = decision.streak
        delays.append(decision.delay)
    assert delays == [1, 2, 4, 8, 16, 30, 30, 30, 30, 30]
    assert streak.restarts == 10
    assert streak.start_failures == 0


def test_a_service_that_stayed_ready_for_a_while_starts_the_backoff_again():
    policy = Policy(stable_after=60)
    streak = supervise.Streak(crashes=5, restarts=5)
    decision = supervise.after_exit(policy, streak, ready_for=61.0, draw=NO_JITTER)
    assert decision.delay == 1
    assert decision.streak == supervise.Streak(crashes=1, start_failures=0, restarts=6)
    # Ready, but not long enough: the backoff goes on growing.
    assert supervise.after_exit(policy, streak, ready_for=59.0, draw=NO_JITTER).delay == 30


def test_failing_start_after_start_gives_up_at_the_limit():
    policy, streak = Policy(max_start_failures=3), supervise.Streak()
    first = supervise.after_exit(policy, streak, ready_for=None, draw=NO_JITTER)
    second = supervise.after_exit(policy, first.streak, ready_for=None, draw=NO_JITTER)
    third = supervise.after_exit(policy, second.streak, ready_for=None, draw=NO_JITTER)
    assert (first.delay, second.delay) == (1, 2)
    assert isinstance(third, supervise.GiveUp)
    assert third.start_failures == 3


def test_a_start_that_reached_ready_clears_the_start_failures():
    policy = Policy(max_start_failures=3)
    streak = supervise.Streak(crashes=2, start_failures=2, restarts=2)
    decision = supervise.after_exit(policy, streak, ready_for=1.0, draw=NO_JITTER)
    assert isinstance(decision, supervise.Restart)
    assert decision.streak.start_failures == 0
    again = supervise.after_exit(policy, decision.streak, ready_for=None, draw=NO_JITTER)
    assert isinstance(again, supervise.Restart)  # one failed start after a good one is not three in a row


def test_exit_statuses_name_the_signal():
    assert supervise.describe_status(-9) == "status -9 (SIGKILL)"
    assert supervise.describe_status(3) == "status 3"
    assert supervise.describe_status(0) == "status 0"


def test_log_lines_shown_on_the_terminal_keep_the_level_and_message_of_json_lines():
    line = (
        '{"time": "2026-12-05 00:22:30,856", "level": "ERROR", "logger": "uvicorn.error", "message": "address in use"}'
    )
    assert supervise.readable(line) == "ERROR address in use"
    assert supervise.readable("Traceback (most recent call last):") == "Traceback (most recent call last):"
    assert supervise.readable("[1, 2]") == "[1, 2]"


def test_a_spec_with_an_unknown_readiness_probe_is_refused():
    with pytest.raises(ValueError, match="'ready' must be"):
        supervise.Spec.from_json({"log_dir": "/tmp/x", "services": [{"name": "a", "command": ["true"], "ready": {}}]})


# --- the real program with real children --------------------------------------------------------------------------

CHILD = textwrap.dedent(
    """
    # A tiny service: /readyz answers 200 with its pid; every SIGTERM or SIGINT it gets is noted in a file.
    import os, signal, sys

    port, notes, mode = int(sys.argv[1]), sys.argv[2], sys.argv[3]

    def note(what):
        with open(notes, "a") as out:
            out.write(what + "\\n")

    def on_signal(signum, frame):
        note(signal.Signals(signum).name)
        if mode != "stubborn":
            os._exit(0)

    signal.signal(signal.SIGTERM, on_signal)  # first thing: a stop that comes early is noted too
    signal.signal(signal.SIGINT, on_signal)

    if mode == "broken":
        print("cannot read the configuration: missing key", flush=True)
        sys.exit(3)

    import http.server, time

    class Ready(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = str(os.getpid()).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    if mode == "never-ready":
        while True:
            time.sleep(1)
    http.server.HTTPServer(("127.0.0.1", port), Ready).serve_forever()
    """
)

FAST = {"initial_delay": 0.2, "jitter": 0, "max_start_failures": 3}


class Children:
    """Tiny child services for one test: a port and a notes file each."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.script = tmp_path / "child.py"
        self.script.write_text(CHILD)
        self.ports: dict[str, int] = {}

    def service(self, name: str, mode: str = "serve") -> dict:
        self.ports[name] = port = free_port()
        return {
            "name": name,
            "command": [sys.executable, str(self.script), str(port), str(self.notes_path(name)), mode],
            "ready": {"http": f"http://127.0.0.1:{port}/readyz"},
        }

    def notes_path(self, name: str) -> Path:
        return self.tmp_path / f"{name}.notes"

    def notes(self, name: str) -> list[str]:
        path = self.notes_path(name)
        return path.read_text().split() if path.exists() else []

    def pid_serving(self, name: str) -> int:
        return int(httpx.get(f"http://127.0.0.1:{self.ports[name]}/readyz", timeout=2).text)


@pytest.fixture
def children(tmp_path: Path) -> Children:
    return Children(tmp_path)


@pytest.fixture
def start_supervisor(tmp_path: Path):
    runs: list[SupervisorRun] = []

    def start(services: list[dict], *, grace: float = 10, **policy) -> SupervisorRun:
        spec = {
            "log_dir": str(tmp_path / "logs"),
            "grace_seconds": grace,
            "banner": "All up.",
            "policy": {**FAST, **policy},
            "services": services,
        }
        runs.append(run := SupervisorRun.of_spec(spec, tmp_path))
        return run

    yield start
    for run in runs:
        run.cleanup()


def test_a_killed_service_comes_back_after_a_growing_backoff_and_says_so(children: Children, start_supervisor):
    run = start_supervisor([children.service("alpha"), children.service("beta")])
    run.wait_for_line("All up.")
    run.wait_for_line("run: every service is ready")
    beta_pid = children.pid_serving("beta")

    first = children.pid_serving("alpha")
    os.kill(first, signal.SIGKILL)
    run.wait_for_line("run: alpha exited with status -9 (SIGKILL); restarting in 0.2 s (restart 1)")
    run.wait_for_line("run: alpha is ready again (restart 1)")
    second = children.pid_serving("alpha")
    assert second != first
    assert run.pids("alpha") == [first, second]

    # Killed again before it ran stable (60 s): twice the wait.
    os.kill(second, signal.SIGKILL)
    run.wait_for_line("run: alpha exited with status -9 (SIGKILL); restarting in 0.4 s (restart 2)")
    run.wait_for_line("run: alpha is ready again (restart 2)")
    assert children.pid_serving("alpha") not in (first, second)

    # The same as JSON lines in the supervisor's log and in the service's own log; the other service untouched.
    for log in ("run", "alpha"):
        restarts = [e for e in run.events(log) if e.get("event") == "restarting"]
        assert [(e["service"], e["status"], e["restart"], e["delay_s"]) for e in restarts] == [
            ("alpha", -9, 1, 0.2),
            ("alpha", -9, 2, 0.4),
        ]
        assert restarts[0]["message"] == "alpha exited with status -9 (SIGKILL); restarting in 0.2 s (restart 1)"
        assert restarts[0]["level"] == "WARNING"
    assert not [e for e in run.events("beta") if e.get("event") == "restarting"]
    assert children.pid_serving("beta") == beta_pid

    run.interrupt()
    assert run.wait() == 0


def test_a_service_that_keeps_failing_at_start_up_stops_everything_and_says_why(children: Children, start_supervisor):
    run = start_supervisor([children.service("steady"), children.service("broken", mode="broken")])
    run.wait_for_line("run: steady started")
    assert run.wait() == 1
    output = run.output()
    assert "run: broken exited with status 3; restarting in 0.2 s (restart 1)" in output
    assert "run: broken exited with status 3; restarting in 0.4 s (restart 2)" in output
    assert (
        "run: broken failed to start 3 times in a row (last: exited with status 3); giving up and stopping "
        "everything (see " in output
    )
    assert "broken| cannot read the configuration: missing key" in output  # its own last words, on the terminal
    assert "All up." not in output
    # The healthy one was stopped gracefully: one SIGTERM, and it is gone.
    assert children.notes("steady") == ["SIGTERM"]
    assert all(pid_gone(pid) for pid in run.pids("steady"))
    gave_up = [e for e in run.events() if e.get("event") == "gave up"]
    assert [(e["service"], e["start_failures"], e["status"], e["level"]) for e in gave_up] == [
        ("broken", 3, 3, "ERROR")
    ]


def test_a_service_that_never_becomes_ready_is_stopped_and_counted_as_a_failed_start(
    children: Children, start_supervisor
):
    run = start_supervisor([children.service("stuck", mode="never-ready")], start_timeout=0.5, max_start_failures=2)
    assert run.wait() == 1
    output = run.output()
    assert "run: stuck was stopped after 0.5 s without becoming ready; restarting in 0.2 s (restart 1)" in output
    assert (
        "run: stuck failed to start 2 times in a row (last: was stopped after 0.5 s without becoming ready)" in output
    )
    assert children.notes("stuck") == ["SIGTERM", "SIGTERM"]  # asked to stop each time, not killed


def test_a_program_that_cannot_be_run_counts_as_a_failed_start(children: Children, start_supervisor, tmp_path: Path):
    missing = {"name": "ghost", "command": [str(tmp_path / "no-such-program")], "ready": {"tcp": "127.0.0.1:1"}}
    run = start_supervisor([children.service("alpha"), missing], max_start_failures=2)
    assert run.wait() == 1
    output = run.output()
    assert "run: ghost could not be started (No such file or directory); restarting in 0.2 s (restart 1)" in output
    assert (
        "run: ghost failed to start 2 times in a row (last: could not be started (No such file or directory))" in output
    )
    assert "run: alpha stopped" in output
    assert all(pid_gone(pid) for pid in run.pids("alpha"))


def test_ctrl_c_stops_every_service_gracefully(children: Children, start_supervisor):
    run = start_supervisor([children.service("alpha"), children.service("beta"), children.service("gamma")])
    run.wait_for_line("run: every service is ready")
    pids = [children.pid_serving(name) for name in ("alpha", "beta", "gamma")]
    run.interrupt()  # the terminal's SIGINT reaches the supervisor only: the services get one SIGTERM from it
    assert run.wait() == 0
    assert [children.notes(name) for name in ("alpha", "beta", "gamma")] == [["SIGTERM"]] * 3
    assert all(pid_gone(pid) for pid in pids)
    output = run.output()
    assert "run: stopping every service (Ctrl-C again to kill them now)" in output
    assert "run: alpha stopped, status 0" in output
    assert output.rstrip().endswith("run: every service has stopped")
    assert "restarting" not in output


def test_a_service_that_ignores_sigterm_is_killed_after_the_grace_period(children: Children, start_supervisor):
    run = start_supervisor([children.service("stubborn", mode="stubborn")], grace=1)
    run.wait_for_line("run: every service is ready")
    pid = children.pid_serving("stubborn")
    run.interrupt()
    assert run.wait() == 0
    assert "run: stubborn did not stop within 1 s; killing it" in run.output()
    assert "run: stubborn stopped, status -9 (SIGKILL)" in run.output()
    assert children.notes("stubborn") == ["SIGTERM"]
    assert pid_gone(pid)


def test_a_second_ctrl_c_kills_at_once(children: Children, start_supervisor):
    run = start_supervisor([children.service("stubborn", mode="stubborn")], grace=120)
    run.wait_for_line("run: every service is ready")
    pid = children.pid_serving("stubborn")
    run.interrupt()
    run.wait_for_line("run: stopping every service")
    wait_for_sync(lambda: children.notes("stubborn"), what="the SIGTERM to arrive")
    started = time.monotonic()
    run.interrupt()
    assert run.wait(timeout=30) == 0
    assert time.monotonic() - started < 30  # far inside the 120 s grace period
    assert "run: killing every service now" in run.output()
    assert pid_gone(pid)


def test_services_do_not_outlive_a_killed_supervisor(children: Children, start_supervisor):
    run = start_supervisor([children.service("alpha"), children.service("beta")])
    run.wait_for_line("run: every service is ready")
    pids = [children.pid_serving(name) for name in ("alpha", "beta")]
    run.proc.kill()
    run.proc.wait()
    # Linux's parent-death signal: each gets a SIGTERM and stops gracefully instead of holding its port.
    wait_for_sync(lambda: all(pid_gone(pid) for pid in pids), timeout=30, what="the orphaned services to stop")
    assert [children.notes(name) for name in ("alpha", "beta")] == [["SIGTERM"], ["SIGTERM"]]
