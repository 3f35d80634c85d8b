"""A private SecantusDB server a test may crash: its own port and storage path, started from the tool environment
scripts/deps.sh installs (SecantusDB is GPL-2.0 and beta: run as a separate process, never imported).

Never the shared server on 27017: other tests and other people use that one.
"""

import os
import signal
import subprocess
import time
from pathlib import Path

from pymongo import MongoClient
from pymongo.errors import PyMongoError

from tests.support.processes import free_port

SECANTUS_VERSION = os.environ.get("SECANTUS_VERSION", "0.7.0b3")


def secantusd_binary() -> Path | None:
    """`SECANTUSD_BIN` (exported by scripts/deps.sh), else where deps.sh installs it; None if neither exists."""
    if explicit := os.environ.get("SECANTUSD_BIN"):
        return Path(explicit) if Path(explicit).is_file() else None
    cache = Path(os.environ.get("MAILSTREAM_CACHE", Path.home() / ".cache" / "mailstream"))
    default = cache / f"secantusdb-{SECANTUS_VERSION}" / "bin" / "secantusd-py"
    return default if default.is_file() else None


class SecantusServer:
    """`secantusd-py --sync-on-commit` on a free port over `storage`; `kill9()` then `start()` again to crash it."""

    def __init__(self, binary: Path, storage: Path, log_path: Path, port: int | None = None) -> None:
        self.binary = binary
        self.storage = storage
        self.log_path = log_path
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/"

    def start(self, timeout: float = 60.0) -> "SecantusServer":
        self.storage.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    str(self.binary),
                    *("--host", "127.0.0.1", "--port", str(self.port)),
                    *("--storage-path", str(self.storage)),
                    "--sync-on-commit",  # as scripts/deps.sh runs it: the journal is fsynced on every commit
                    *("--log-level", "WARNING"),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.storage,  # no stray ./secantusd.toml of the caller's directory is picked up
            )
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"secantusd exited with {self.proc.returncode}:\n{self.logs()}")
            try:
                with MongoClient(self.uri, serverSelectionTimeoutMS=500, connectTimeoutMS=500) as client:
                    client.admin.command("ping")
                return
            except PyMongoError:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"secantusd not answering on {self.port} within {timeout}s:\n{self.logs()}"
                    ) from None
                time.sleep(0.1)

    def kill9(self) -> None:
        """A crash: SIGKILL, nothing flushed or closed by the server."""
        assert self.proc is not None and self.proc.poll() is None, "the server is not running"
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def logs(self, tail: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-tail:])
