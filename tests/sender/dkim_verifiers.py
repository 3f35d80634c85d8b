"""Independent DKIM checking for the tests: a real DNS server (dnsmasq) publishing the public keys, dkimpy
resolving through it with dnspython, and Perl's Mail::DKIM resolving through it with Net::DNS."""

import base64
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import dkim
import dns.resolver
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from tests.support.processes import free_port
from tests.support.waiting import wait_for_sync

DNSMASQ = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"

_PERL_VERIFIER = r"""
use strict;
use Mail::DKIM::Verifier;
use Net::DNS::Resolver;
my $port = shift @ARGV;
Mail::DKIM::DNS::resolver(Net::DNS::Resolver->new(
    nameservers => ['127.0.0.1'], port => $port, recurse => 1, udp_timeout => 5, tcp_timeout => 5, retry => 2));
my $dkim = Mail::DKIM::Verifier->new();
binmode STDIN;
while (my $line = <STDIN>) { $line =~ s/\r?\n\z/\015\012/; $dkim->PRINT($line); }
$dkim->CLOSE;
foreach my $sig ($dkim->signatures) {
    print "signature ", $sig->domain, " ", $sig->algorithm, " ", $sig->result_detail, "\n";
}
print "result ", $dkim->result_detail, "\n";
"""


def dkim_txt_record(public_key: rsa.RSAPublicKey | ed25519.Ed25519PublicKey) -> str:
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return f"v=DKIM1; k=ed25519; p={base64.b64encode(raw).decode()}"
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode()}"


def _txt_strings(value: str) -> list[str]:
    """A TXT value as DNS character-strings of at most 255 octets (a 2048-bit key's record is longer)."""
    return [value[i : i + 255] for i in range(0, len(value), 255)]


@dataclass
class DkimDns:
    """dnsmasq answering TXT queries for `<selector>._domainkey.<domain>` on a free port of 127.0.0.1."""

    records: dict[str, str]
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    def start(self, attempts: int = 3) -> "DkimDns":
        """Start dnsmasq and wait until it answers; on another port if this one turns out to be taken (UDP)."""
        for attempt in range(1, attempts + 1):
            try:
                self._start_once()
                return self
            except (RuntimeError, AssertionError):
                self.stop()
                if attempt == attempts:
                    raise
                self.port = free_port()
        return self

    def _start_once(self) -> None:
        args = [
            DNSMASQ,
            "--no-daemon",
            "--conf-file=/dev/null",
            "--pid-file=",
            "--no-resolv",
            "--no-hosts",
            "--bind-interfaces",
            "--listen-address=127.0.0.1",
            f"--port={self.port}",
            "--user=root",
        ]
        for name, value in self.records.items():
            strings = ",".join(_txt_strings(value))  # argv, not a shell: dnsmasq would keep quotes literally
            args.append(f"--txt-record={name},{strings}")
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        first = next(iter(self.records))
        wait_for_sync(lambda: self._answers(first), timeout=20, what="dnsmasq answering")

    def _answers(self, name: str) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"dnsmasq exited: {self.proc.stderr.read().decode() if self.proc.stderr else ''}")
        try:
            return self.txt(name.encode()) is not None
        except (dns.exception.DNSException, OSError):  # not bound yet: ICMP port unreachable -> ECONNREFUSED
            return False

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)

    def resolver(self) -> dns.resolver.Resolver:
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = ["127.0.0.1"]
        resolver.port = self.port
        resolver.lifetime = 3
        return resolver

    def txt(self, name: bytes, timeout: float = 5) -> bytes | None:
        """dkimpy's `dnsfunc`: the TXT record's strings joined, asked of this server."""
        answer = self.resolver().resolve(name.decode().rstrip("."), "TXT", raise_on_no_answer=False)
        for rr in answer.rrset or []:
            return b"".join(rr.strings)
        return None

    def verify_with_dkimpy(self, message: bytes) -> list[bool]:
        """One result per DKIM-Signature header, each checked by dkimpy against this DNS server."""
        checker = dkim.DKIM(message)
        count = sum(1 for name, _ in checker.headers if name.lower() == b"dkim-signature")
        results = []
        for i in range(count):
            try:
                results.append(bool(checker.verify(idx=i, dnsfunc=self.txt)))
            except dkim.DKIMException:  # e.g. body hash mismatch: a failed verification
                results.append(False)
        return results

    def verify_with_mail_dkim(self, message: bytes) -> str:
        """Perl Mail::DKIM's verdict (its own parser, canonicaliser, crypto and DNS client)."""
        with tempfile.NamedTemporaryFile("w", suffix=".pl", delete=False) as script:
            script.write(_PERL_VERIFIER)
        try:
            out = subprocess.run(
                ["perl", script.name, str(self.port)], input=message, capture_output=True, timeout=30, check=True
            )
        finally:
            Path(script.name).unlink()
        return out.stdout.decode()
