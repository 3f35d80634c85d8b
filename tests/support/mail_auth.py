"""Independent DKIM and SPF verdicts for tests: Perl Mail::DKIM and Mail::SPF (Debian libmail-dkim-perl,
libmail-spf-perl), resolving through a test `DnsServer` rather than the system resolver.

    out = dkim_verify(dns, signed_bytes)   # "acme.test ms2026111 pass\nRESULT pass\n"
    assert dkim_result(dns, signed_bytes) == "pass"
    assert spf_result(dns, "bounce@acme.test", "127.0.0.1") == "pass"
"""

import subprocess
from pathlib import Path

from tests.support.dns_server import DnsServer

HERE = Path(__file__).parent


def dkim_verify(dns: DnsServer, message: bytes) -> str:
    """Mail::DKIM::Verifier's report: one line per signature `<d> <s> <result detail>`, then `RESULT <result>`."""
    done = subprocess.run(
        ["perl", str(HERE / "dkim_verify.pl"), str(dns.port)], input=message, capture_output=True, timeout=30
    )
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode()


def dkim_result(dns: DnsServer, message: bytes) -> str:
    """The overall result: pass, fail, invalid, none, temperror ..."""
    return dkim_verify(dns, message).strip().splitlines()[-1].removeprefix("RESULT ")


def spf_result(dns: DnsServer, mail_from: str, ip: str) -> str:
    """Mail::SPF's result code for MAIL FROM `mail_from` sent from `ip`: pass, fail, softfail, neutral, permerror ..."""
    done = subprocess.run(
        ["perl", str(HERE / "spf_check.pl"), str(dns.port), mail_from, ip], capture_output=True, timeout=30
    )
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode().strip()
