"""The supervisor (scripts/supervise.py) as a module, and a real run of it that a test can watch and signal."""

import contextlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

from tests.support.waiting import wait_for_sync

ROOT = Path(__file__).resolve().parents[2]
SUPERVISE = ROOT / "scripts" / "supervise.py"


def load_supervise():
    spec = importlib.util.spec_from_file_location("supervise", SUPERVISE)
    module = importlib.util.module_from_spec(spec)
    sys.modules["supervise"] = module  # dataclasses look their module up while the class is being built
    spec.loader.exec_module(module)
    return module


def pid_gone(pid: int) -> bool:
    """No such process any more (a zombie counts as gone: it runs nothing and holds no port)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


class SupervisorRun:
    """`supervise.py SPEC` as its own process group, as a terminal would run it; its terminal output in a file."""

    def __init__(self, command: list[str], log_dir: Path, output: Path, env: dict[str, str] | None = None) -> None:
        self.log_dir = log_dir
        self.output_path = output
        # Inherited by every child: clean-up kills only processes that carry it, never a recycled pid.
        self.tag = f"SUPERVISOR_TEST_RUN={uuid.uuid4().hex}"
        name, _, value = self.tag.partition("=")
        with output.open("wb") as out:
            self.proc = subprocess.Popen(
                command,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**(env or os.environ), name: value},
            )

    @classmethod
    def of_spec(cls, spec: dict, tmp_path: Path) -> "SupervisorRun":
        spec_path = tmp_path / "spec.json"
        spec_path.write_text(json.dumps(spec))
        return cls([sys.executable, str(SUPERVISE), str(spec_path)], Path(spec["log_dir"]), tmp_path / "terminal.txt")

    def output(self) -> str:
        return self.output_path.read_text(errors="replace")

    def wait_for_line(self, text: str, *, timeout: float = 30.0) -> str:
        def seen():
            if text in self.output():
                return True
            assert self.proc.poll() is None, f"the supervisor exited ({self.proc.returncode}):\n{self.output()}"
            return False

        try:
            wait_for_sync(seen, timeout=timeout, interval=0.05, what=repr(text))
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nterminal so far:\n{self.output()}") from None
        return self.output()

    def events(self, log: str = "run") -> list[dict]:
        """The supervisor's JSON lines in run.log, or in a service's own log."""
        path = self.log_dir / f"{log}.log"
        lines = path.read_text(errors="replace").splitlines() if path.exists() else []
        return [
            record
            for record in (json.loads(line) for line in lines if line.startswith("{"))
            if record.get("logger") == "mailstream.run"
        ]

    def pids(self, name: str) -> list[int]:
        """Every pid the service has had, in order."""
        return [e["pid"] for e in self.events() if e.get("event") == "started" and e["service"] == name]

    def interrupt(self) -> None:
        """Ctrl-C: SIGINT to the whole foreground process group."""
        os.killpg(self.proc.pid, signal.SIGINT)

    def wait(self, timeout: float = 60.0) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the supervisor did not exit within {timeout}s:\n{self.output()}") from None

    def cleanup(self) -> None:
        pids = [e["pid"] for e in self.events() if e.get("event") == "started"]
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        for pid in pids:  # its children have their own process groups
            if self.started_here(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)

    def started_here(self, pid: int) -> bool:
        try:
            return self.tag.encode() in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            return False
