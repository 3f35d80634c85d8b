"""Run the real service processes for end-to-end tests, and read their logs when a test fails."""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServiceProcess:
    """`python -m <module>` with its environment; ready when its /readyz answers 200."""

    def __init__(self, name: str, module: str, env: dict[str, str], ops_url: str, log_dir: Path) -> None:
        self.name = name
        self.module = module
        self.env = env
        self.ops_url = ops_url
        self.log_path = log_dir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.stop_requested = False

    def start(self, timeout: float = 60.0) -> "ServiceProcess":
        return self.spawn().wait_ready(timeout)

    def spawn(self) -> "ServiceProcess":
        """Start the process without waiting, so that several can start side by side."""
        self.stop_requested = False
        log_file = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", self.module],
            env={**os.environ, **self.env},
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        log_file.close()  # the child has its own descriptor
        return self

    def wait_ready(self, timeout: float = 60.0) -> "ServiceProcess":
        assert self.proc is not None, "spawn() first"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.logs()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.ops_url}/readyz", timeout=1).status_code == 200:
                    return self
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} not ready within {timeout}s:\n{self.logs()}")

    def request_stop(self) -> None:
        """SIGTERM without waiting, so that several can drain side by side; `stop()` then waits."""
        if self.proc is not None and self.proc.poll() is None and not self.stop_requested:
            self.proc.send_signal(signal.SIGTERM)
            # Once: a second SIGTERM that lands after the service's event loop has closed meets Python's default
            # handler and kills a process that was exiting cleanly.
            self.stop_requested = True

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM (graceful shutdown) and wait; SIGKILL only if it does not stop in time."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.request_stop()
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def kill(self) -> None:
        """A crash: no graceful shutdown at all."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def logs(self, tail: int = 80) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-tail:])
