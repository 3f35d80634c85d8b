"""Keep a handful of processes running on one machine, the way the cluster does (issue 12).

scripts/run.sh sets up the dev secrets and then hands over to this supervisor, which:

- starts every service and waits for its readiness probe (HTTP 200, or a TCP port that accepts);
- restarts a service that exits, after a backoff that doubles from 1 s up to 30 s (with jitter, so services that
  died together do not come back in lockstep) and starts again from 1 s once the service has stayed ready for a
  minute; each restart is said on the terminal and written as a JSON line to the service's log and to run.log;
- stops a service that does not become ready within the start-up timeout, and counts that as a failed start;
- gives up, stopping everything with a non-zero status, when a service fails to start (exits or times out before
  its first ready probe) several times in a row: a broken configuration does not heal by retrying for ever;
- on Ctrl-C or SIGTERM stops every service gracefully (one SIGTERM, then SIGKILL after the grace period); a second
  Ctrl-C kills at once.

Standard library only: it runs before, and independently of, the services' own environment.

Usage: supervise.py SPEC.json, where the spec is
  {"log_dir": "...", "grace_seconds": 25, "banner": "text printed once everything is ready (optional)",
   "policy": {RestartPolicy fields, all optional},
   "services": [{"name": "inbox", "command": ["python", "-m", "mailstream_inbox"], "env": {...},
                 "ready": {"http": "http://127.0.0.1:8000/readyz"} or {"tcp": "127.0.0.1:2526"}}, ...]}
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

# --- the policy: pure -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RestartPolicy:
    initial_delay: float = 1.0  # seconds before the first restart
    max_delay: float = 30.0  # the backoff doubles up to this
    jitter: float = 0.2  # each delay is stretched or shrunk by up to this fraction
    stable_after: float = 60.0  # ready this long before an exit: the backoff starts again from initial_delay
    max_start_failures: int = 5  # failed starts in a row before giving up on everything
    start_timeout: float = 120.0  # not ready this long after a start: stopped and counted as a failed start


@dataclass(frozen=True)
class Streak:
    """What the policy remembers about one service between its exits."""

    crashes: int = 0  # exits since it last ran stable; sets the backoff
    start_failures: int = 0  # exits in a row before it became ready
    restarts: int = 0  # restarts so far in this run


@dataclass(frozen=True)
class Restart:
    delay: float
    streak: Streak


@dataclass(frozen=True)
class GiveUp:
    start_failures: int
    streak: Streak


def backoff_delay(policy: RestartPolicy, crashes: int, draw: float) -> float:
    """The wait before restart number `crashes` (1 for the first) of a streak; `draw` in [0, 1) sets the jitter."""
    base = min(policy.max_delay, policy.initial_delay * 2 ** max(crashes - 1, 0))
    return base * (1 + policy.jitter * (2 * draw - 1))


def after_exit(policy: RestartPolicy, streak: Streak, *, ready_for: float | None, draw: float) -> Restart | GiveUp:
    """What to do about a service that exited unasked.

    `ready_for` is how long it had been ready before it exited, None if it never became ready since its start."""
    crashes = 1 if ready_for is not None and ready_for >= policy.stable_after else streak.crashes + 1
    start_failures = 0 if ready_for is not None else streak.start_failures + 1
    if start_failures >= policy.max_start_failures:
        return GiveUp(start_failures, replace(streak, crashes=crashes, start_failures=start_failures))
    restarted = Streak(crashes=crashes, start_failures=start_failures, restarts=streak.restarts + 1)
    return Restart(backoff_delay(policy, crashes, draw), restarted)


def describe_status(returncode: int) -> str:
    """`status 1`, or `status -9 (SIGKILL)` for a process a signal ended."""
    if returncode < 0:
        with contextlib.suppress(ValueError):
            return f"status {returncode} ({signal.Signals(-returncode).name})"
    return f"status {returncode}"


def readable(line: str) -> str:
    """A service's JSON log line as `LEVEL message`, for a person reading a terminal; any other line as it is."""
    try:
        record = json.loads(line)
    except ValueError:
        return line
    if not isinstance(record, dict) or "message" not in record:
        return line
    return f"{record.get('level', '')} {record['message']}".strip()


# --- the spec -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    command: list[str]
    ready: dict[str, str]  # {"http": url} or {"tcp": "host:port"}
    env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Spec:
    services: list[ServiceSpec]
    log_dir: Path
    grace_seconds: float = 25.0
    banner: str = ""
    policy: RestartPolicy = RestartPolicy()

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Spec:
        services = [
            ServiceSpec(s["name"], list(s["command"]), dict(s["ready"]), dict(s.get("env", {})))
            for s in data["services"]
        ]
        for service in services:
            if set(service.ready) - {"http", "tcp"} or len(service.ready) != 1:
                raise ValueError(f"{service.name}: 'ready' must be {{'http': url}} or {{'tcp': 'host:port'}}")
        return cls(
            services=services,
            log_dir=Path(data["log_dir"]),
            grace_seconds=float(data.get("grace_seconds", 25.0)),
            banner=data.get("banner", ""),
            policy=RestartPolicy(**data.get("policy", {})),
        )


# --- the processes: thin ----------------------------------------------------------------------------------------

_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # a dev proxy must not answer for localhost


def is_ready(ready: dict[str, str]) -> bool:
    try:
        if "http" in ready:
            with _NO_PROXY.open(ready["http"], timeout=1) as response:
                return response.status == 200
        host, _, port = ready["tcp"].rpartition(":")
        with socket.create_connection((host, int(port)), timeout=1):
            return True
    except (OSError, urllib.error.URLError, ValueError):
        return False


def _parent_death_signal() -> Any:
    """A pre-exec hook asking Linux to SIGTERM the child if the supervisor itself dies (kill -9 included), so that
    no service is left holding its port; None elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)  # loaded before the fork: nothing is loaded in the child
    except OSError:
        return None
    pr_set_pdeathsig = 1

    def hook() -> None:
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)

    return hook


@dataclass
class Child:
    spec: ServiceSpec
    streak: Streak = Streak()
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    ready_at: float | None = None
    was_ever_ready: bool = False
    restart_at: float | None = None  # a restart is scheduled for then
    term_sent_at: float | None = None  # asked to stop (start-up timeout or shutdown)
    timed_out: bool = False
    killed: bool = False

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None


class Supervisor:
    def __init__(self, spec: Spec, *, out=None, rng: random.Random | None = None) -> None:
        self.spec = spec
        self.policy = spec.policy
        self.out = out or sys.stderr
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not secrets
        self.children = [Child(s) for s in spec.services]
        self.stop_requests = 0  # 1: stop gracefully; 2: kill now
        self.stopping_since: float | None = None
        self.exit_status = 0
        self.announced_ready = False
        self.pre_exec = _parent_death_signal()
        spec.log_dir.mkdir(parents=True, exist_ok=True)

    # --- saying what happens ---

    def log_path(self, name: str) -> Path:
        return self.spec.log_dir / f"{name}.log"

    def say(self, message: str, *, level: str = "INFO", child: Child | None = None, **fields: Any) -> None:
        """One line on the terminal; the same as a JSON line in run.log and in the service's own log."""
        print(f"run: {message}", file=self.out, flush=True)
        record = {
            "time": datetime.now().strftime("%Y-%m-%d %H:%M:%S,%f")[:-3],  # as the services' own lines have it
            "level": level,
            "logger": "mailstream.run",
            "message": message,
            "service": child.spec.name if child else "run",
            **fields,
        }
        line = json.dumps(record) + "\n"
        targets = [self.log_path("run")] + ([self.log_path(child.spec.name)] if child else [])
        for path in targets:
            with path.open("a") as log:  # O_APPEND: a whole line, even while the service writes to the same file
                log.write(line)

    # --- one service ---

    def start(self, child: Child, now: float) -> None:
        child.started_at, child.ready_at, child.restart_at = now, None, None
        child.term_sent_at, child.timed_out, child.killed = None, False, False
        try:
            with self.log_path(child.spec.name).open("ab") as log:
                child.proc = subprocess.Popen(  # noqa: S603 - the commands come from run.sh's own spec
                    child.spec.command,
                    env={**os.environ, **child.spec.env},
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # Ctrl-C reaches the supervisor only; it stops the services itself
                    preexec_fn=self.pre_exec,  # single-threaded supervisor: the hook cannot deadlock
                )
        except OSError as exc:  # a missing program: a failed start like any other
            child.proc = None
            self.after_failure(child, now, f"could not be started ({exc.strerror or exc})", status=None)
            return
        self.say(
            f"{child.spec.name} started (pid {child.proc.pid})",
            child=child,
            event="started",
            pid=child.proc.pid,
            restart=child.streak.restarts,
        )

    def terminate(self, child: Child, now: float) -> None:
        """One SIGTERM, never two: a second one can land after a service's event loop has closed and kill a
        process that was exiting cleanly."""
        if child.alive and child.term_sent_at is None:
            with contextlib.suppress(ProcessLookupError):
                child.proc.send_signal(signal.SIGTERM)
            child.term_sent_at = now

    def kill(self, child: Child) -> None:
        child.killed = True
        if child.alive:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.proc.pid, signal.SIGKILL)  # its own process group: anything it started goes too

    def on_exit(self, child: Child, now: float) -> None:
        status = child.proc.returncode
        child.proc = None
        how = (
            f"was stopped after {self.policy.start_timeout:g} s without becoming ready"
            if child.timed_out
            else f"exited with {describe_status(status)}"
        )
        self.after_failure(child, now, how, status=status)

    def after_failure(self, child: Child, now: float, how: str, *, status: int | None) -> None:
        """Restart the service after its backoff, or give up on everything."""
        name = child.spec.name
        ready_for = None if child.ready_at is None else now - child.ready_at
        decision = after_exit(self.policy, child.streak, ready_for=ready_for, draw=self.rng.random())
        child.streak = decision.streak
        fields = {"status": status, "ready_for_s": None if ready_for is None else round(ready_for, 1)}
        if isinstance(decision, GiveUp):
            self.say(
                f"{name} failed to start {decision.start_failures} times in a row (last: {how}); giving up and "
                f"stopping everything (see {self.log_path(name)})",
                level="ERROR",
                child=child,
                event="gave up",
                start_failures=decision.start_failures,
                **fields,
            )
            self.show_log_tail(child)
            self.exit_status = 1
            self.request_stop(now)
            return
        child.restart_at = now + decision.delay
        self.say(
            f"{name} {how}; restarting in {decision.delay:.1f} s (restart {decision.streak.restarts})",
            level="WARNING",
            child=child,
            event="restarting",
            delay_s=round(decision.delay, 2),
            restart=decision.streak.restarts,
            **fields,
        )

    def show_log_tail(self, child: Child, lines: int = 10) -> None:
        """The service's own last words: usually the reason it cannot start."""
        with contextlib.suppress(OSError):
            own = [
                line
                for line in self.log_path(child.spec.name).read_text(errors="replace").splitlines()
                if '"logger": "mailstream.run"' not in line
            ]
            for line in own[-lines:]:
                print(f"  {child.spec.name}| {readable(line)}", file=self.out, flush=True)

    def check(self, child: Child, now: float) -> None:
        """One look at one service while running normally."""
        if child.proc is None:
            if child.restart_at is not None and now >= child.restart_at:
                self.start(child, now)
            return
        if child.proc.poll() is not None:
            self.on_exit(child, now)
            return
        if child.term_sent_at is not None:
            if now - child.term_sent_at > self.spec.grace_seconds and not child.killed:
                self.kill(child)
            return
        if child.ready_at is None:
            if is_ready(child.spec.ready):
                child.ready_at = now
                if child.was_ever_ready:
                    self.say(
                        f"{child.spec.name} is ready again (restart {child.streak.restarts})",
                        child=child,
                        event="ready",
                        restart=child.streak.restarts,
                    )
                child.was_ever_ready = True
            elif now - child.started_at > self.policy.start_timeout:
                child.timed_out = True
                self.terminate(child, now)

    # --- everything ---

    def request_stop(self, now: float) -> None:
        if self.stopping_since is None:
            self.stopping_since = now
        for child in self.children:
            child.restart_at = None
            self.terminate(child, now)

    def on_signal(self, signum: int, _frame: Any) -> None:
        self.stop_requests += 1  # the loop acts on it: nothing here that could be interrupted half-way

    def run(self) -> int:
        previous = {sig: signal.signal(sig, self.on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            return self._loop()
        finally:
            for child in self.children:  # whatever went wrong in here, no service is left behind
                self.kill(child)
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _loop(self) -> int:
        now = time.monotonic()
        for child in self.children:
            self.start(child, now)
        handled_requests = 0
        while True:
            now = time.monotonic()
            if self.stop_requests > handled_requests:
                handled_requests = self.stop_requests
                if handled_requests == 1 and self.stopping_since is None:
                    self.say("stopping every service (Ctrl-C again to kill them now)", event="stopping")
                    self.request_stop(now)
                else:
                    self.say("killing every service now", level="WARNING", event="killing")
                    self.request_stop(now)
                    for child in self.children:
                        self.kill(child)
            if self.stopping_since is None:
                for child in self.children:
                    self.check(child, now)
                    if self.stopping_since is not None:
                        break
                if not self.announced_ready and all(c.ready_at is not None for c in self.children):
                    self.announced_ready = True
                    if self.spec.banner:
                        print(self.spec.banner, file=self.out, flush=True)
                    self.say("every service is ready", event="all ready")
            else:
                if self.stopped(now):
                    return self.exit_status
            time.sleep(0.1)

    def stopped(self, now: float) -> bool:
        """While stopping: reap what exited, kill what outlived the grace period; True once nothing runs."""
        for child in self.children:
            if child.proc is None:
                continue
            if child.proc.poll() is not None:
                self.say(
                    f"{child.spec.name} stopped, {describe_status(child.proc.returncode)}",
                    child=child,
                    event="stopped",
                    status=child.proc.returncode,
                )
                child.proc = None
            elif (
                not child.killed
                and child.term_sent_at is not None
                and now - child.term_sent_at > self.spec.grace_seconds
            ):
                self.say(
                    f"{child.spec.name} did not stop within {self.spec.grace_seconds:g} s; killing it",
                    level="WARNING",
                    child=child,
                    event="killing",
                )
                self.kill(child)
        if any(child.proc is not None for child in self.children):
            return False
        self.say("every service has stopped", event="all stopped", status=self.exit_status)
        return True


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(f"usage: {argv[0]} SPEC.json", file=sys.stderr)
        return 2
    spec = Spec.from_json(json.loads(Path(argv[1]).read_text()))
    return Supervisor(spec).run()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
