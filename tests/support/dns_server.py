"""A real DNS server on 127.0.0.1 for tests: dnsmasq serving the records a test writes.

    dns = DnsServer.start({"acme.test": ["v=spf1 include:_spf.mailstream.test ~all"],
                           "ms2026111._domainkey.acme.test": [dkim_value],     # long: split into 255-byte strings
                           "multi.acme.test": [("first string", "second")],      # one record, several strings
                           "mx.acme.test": [A("127.0.0.1")], "acme.test": [MX("mx.acme.test", 10)]})
    resolver nameserver: dns.nameserver  ("127.0.0.1:<port>", the DNS_NAMESERVERS format)
    dns.set_records({...})   # replaces every record (dnsmasq restarts on the same port; ~50 ms)
    dns.stop()

What the answers look like (checked against dnsmasq 2.90):
- a TXT value given as one `str` longer than 255 bytes is served as ONE record of consecutive 255-byte strings
  (what a correct zone file holds); a tuple of strings is served as one record with exactly those strings;
  several values at one name are several records.
- names under a served zone that have no record answer NXDOMAIN; a name with records of another type only
  answers NOERROR with no answer (NODATA); names outside every zone answer REFUSED.
- `servfail_zones`: names under them answer SERVFAIL (dnsmasq forwards them to a small upstream that fails).
- `timeout_zones`: names under them never answer (dnsmasq forwards them to a port where nobody listens), so
  a client sees a real timeout.
Zones default to the last two labels of every record name.
"""

import contextlib
import os
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import dns.message
import dns.query
import dns.rcode

DNSMASQ = "/usr/sbin/dnsmasq"


@dataclass(frozen=True)
class A:
    address: str


@dataclass(frozen=True)
class MX:
    host: str
    preference: int = 10


@dataclass(frozen=True)
class CNAME:
    target: str


RecordValue = str | tuple[str, ...] | A | MX | CNAME
Records = Mapping[str, Sequence[RecordValue]]


def _free_port() -> int:
    """A port free for both UDP and TCP (dnsmasq binds both). A free UDP port can be taken for TCP, e.g. by a
    connection in TIME_WAIT after a load test's many short connections: then try another one."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = udp.getsockname()[1]
        with socket.socket() as tcp:
            try:
                tcp.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise OSError("no port free for both UDP and TCP in 100 tries")


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _zone_of(name: str) -> str:
    return ".".join(name.rstrip(".").split(".")[-2:])


class _ServfailUpstream:
    """The upstream dnsmasq forwards `servfail_zones` to: it answers every query with SERVFAIL."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                data, peer = self.sock.recvfrom(4096)
            except OSError:
                return
            with contextlib.suppress(Exception):
                reply = dns.message.make_response(dns.message.from_wire(data))
                reply.set_rcode(dns.rcode.SERVFAIL)
                self.sock.sendto(reply.to_wire(), peer)

    def close(self) -> None:
        self.sock.close()


class DnsServer:
    def __init__(
        self, *, port: int | None = None, servfail_zones: Iterable[str] = (), timeout_zones: Iterable[str] = ()
    ) -> None:
        self.host = "127.0.0.1"
        self.port = port or _free_port()
        self.servfail_zones = tuple(servfail_zones)
        self.timeout_zones = tuple(timeout_zones)
        self.records: dict[str, list[RecordValue]] = {}
        self.zones: tuple[str, ...] = ()
        self._dir = Path(tempfile.mkdtemp(prefix="dnsmasq-"))
        self._proc: subprocess.Popen[bytes] | None = None
        self._servfail = _ServfailUpstream() if self.servfail_zones else None
        self._silent_port = _free_port()  # nobody listens here: forwarded queries time out

    @property
    def nameserver(self) -> str:
        """`127.0.0.1:<port>`, the format of DNS_NAMESERVERS."""
        return f"{self.host}:{self.port}"

    @classmethod
    def start(
        cls,
        records: Records | None = None,
        *,
        zones: Iterable[str] | None = None,
        servfail_zones: Iterable[str] = (),
        timeout_zones: Iterable[str] = (),
    ) -> "DnsServer":
        server = cls(servfail_zones=servfail_zones, timeout_zones=timeout_zones)
        server.set_records(records or {}, zones=zones)
        return server

    def set_records(self, records: Records, *, zones: Iterable[str] | None = None) -> None:
        """Serve exactly `records` from now on (restarts dnsmasq on the same port and waits until it answers)."""
        self.records = {name.rstrip(".").lower(): list(values) for name, values in records.items()}
        self.zones = tuple(zones) if zones is not None else tuple(sorted({_zone_of(n) for n in self.records}))
        self._stop_process()
        conf = self._dir / "dnsmasq.conf"
        conf.write_text(self._config())
        self._proc = subprocess.Popen(
            [
                DNSMASQ,
                "--no-daemon",
                f"--conf-file={conf}",
                "--no-resolv",
                "--no-hosts",
                "--no-negcache",
                "--cache-size=0",
                f"--port={self.port}",
                "--listen-address=127.0.0.1",
                "--bind-interfaces",
            ],
            stdout=subprocess.DEVNULL,
            stderr=(self._dir / "dnsmasq.log").open("ab"),
        )
        self._wait_ready()

    def update(self, records: Records) -> None:
        """Add or replace the records at the given names, keep the others."""
        merged = dict(self.records)
        merged.update({name.rstrip(".").lower(): list(values) for name, values in records.items()})
        self.set_records(merged, zones=None)

    def _config(self) -> str:
        lines: list[str] = []
        for zone in self.zones:
            lines.append(f"local=/{zone}/")
        for zone in self.servfail_zones:
            assert self._servfail is not None
            lines.append(f"server=/{zone}/127.0.0.1#{self._servfail.port}")
        for zone in self.timeout_zones:
            lines.append(f"server=/{zone}/127.0.0.1#{self._silent_port}")
        for name, values in self.records.items():
            for value in values:
                if isinstance(value, str):
                    lines.append(f"txt-record={name},{_quote(value)}")
                elif isinstance(value, tuple):
                    lines.append(f"txt-record={name}," + ",".join(_quote(part) for part in value))
                elif isinstance(value, A):
                    lines.append(f"host-record={name},{value.address}")
                elif isinstance(value, MX):
                    lines.append(f"mx-host={name},{value.host},{value.preference}")
                elif isinstance(value, CNAME):
                    lines.append(f"cname={name},{value.target}")
                else:
                    raise TypeError(f"unsupported record value {value!r}")
        return "\n".join(lines) + "\n"

    def _wait_ready(self, timeout: float = 20.0) -> None:
        probe = dns.message.make_query("dnsserver-ready.invalid", "TXT")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                error = (self._dir / "dnsmasq.log").read_text(errors="replace")
                raise RuntimeError(f"dnsmasq exited with {self._proc.returncode}: {error}")
            with contextlib.suppress(Exception):
                dns.query.udp(probe, self.host, port=self.port, timeout=0.05)
                return  # any answer (REFUSED) means it listens
            time.sleep(0.005)
        raise RuntimeError("dnsmasq did not answer in time")

    def _stop_process(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None

    def stop(self) -> None:
        self._stop_process()
        if self._servfail is not None:
            self._servfail.close()
        with contextlib.suppress(OSError):
            for path in self._dir.iterdir():
                path.unlink()
            os.rmdir(self._dir)

    def __enter__(self) -> "DnsServer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
