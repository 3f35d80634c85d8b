"""The DNS side of inbound SPF, DKIM and DMARC: lookups, time-boxed, turned into `auth_results` values.

pyspf and dkimpy are synchronous, so each check runs in a worker thread with its own DNS lifetime, and the whole
set is bounded by a time box: a slow or dead resolver makes the result `temperror`, never a stuck consumer.
DNS goes through one dnspython resolver pointed at `DNS_NAMESERVERS`.
"""

import asyncio
import logging
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import dkim
import dns.exception
import dns.name
import dns.resolver
import spf

from mailstream_common.contracts.mail import AuthenticationResult

from .auth_results import (
    Checks,
    DkimOutcome,
    evaluate_dmarc,
    format_header,
    organizational_domain,
    parse_dmarc_record,
    summarise,
)

log = logging.getLogger(__name__)


class DnsTemporaryError(Exception):
    """A lookup timed out or no server answered: 'temperror', not 'none'."""


def make_resolver(nameservers: str, timeout: float) -> dns.resolver.Resolver:
    """A resolver for `ip[:port],...`; the system configuration when empty."""
    entries = [e.strip() for e in nameservers.split(",") if e.strip()]
    resolver = dns.resolver.Resolver(configure=not entries)
    if entries:
        servers, ports = [], set()
        for entry in entries:
            host, _, port = entry.rpartition(":") if entry.count(":") == 1 else (entry, "", "")
            servers.append(host)
            ports.add(int(port) if port else 53)
        resolver.nameservers = servers
        resolver.port = ports.pop() if len(ports) == 1 else 53
    resolver.timeout = timeout
    resolver.lifetime = timeout
    resolver.cache = dns.resolver.LRUCache(10_000)
    return resolver


class ResolverBreaker:
    """Stops asking a resolver that keeps timing out, for a while.

    Without it a dead resolver costs every mail the full DNS timeout in each check, and the worker threads fill
    up with mails waiting for nothing. After `threshold` timeouts in a row the breaker opens: lookups fail at once
    as temporary errors for `cool_down` seconds, then one lookup is tried again.
    """

    def __init__(self, threshold: int = 3, cool_down: float = 30.0, clock=time.monotonic) -> None:
        self.threshold = threshold
        self.cool_down = cool_down
        self._clock = clock
        self._lock = threading.Lock()
        self._timeouts = 0
        self._open_until = 0.0

    def allow(self) -> bool:
        with self._lock:
            return self._timeouts < self.threshold or self._clock() >= self._open_until

    def succeeded(self) -> None:
        with self._lock:
            self._timeouts = 0

    def timed_out(self) -> None:
        with self._lock:
            self._timeouts += 1
            if self._timeouts >= self.threshold:
                self._open_until = self._clock() + self.cool_down


class DnsTxt:
    """Lookups for the checkers: empty list when there is no record, DnsTemporaryError when unknown."""

    def __init__(self, resolver: dns.resolver.Resolver, breaker: ResolverBreaker | None = None) -> None:
        self.resolver = resolver
        self.breaker = breaker or ResolverBreaker()

    def query(self, name: str, qtype: str) -> list:
        if not self.breaker.allow():
            raise DnsTemporaryError(f"{name} {qtype}: resolver timing out, not asked")
        try:
            answers = list(self.resolver.resolve(name, qtype, search=False))
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            self.breaker.succeeded()
            return []
        except (dns.exception.Timeout, dns.resolver.LifetimeTimeout) as exc:
            self.breaker.timed_out()
            raise DnsTemporaryError(f"{name} {qtype}: {type(exc).__name__}") from exc
        except dns.resolver.NoNameservers as exc:  # SERVFAIL/REFUSED: that domain's problem, not the resolver's
            raise DnsTemporaryError(f"{name} {qtype}: {type(exc).__name__}") from exc
        self.breaker.succeeded()
        return answers

    def txt(self, name: str) -> list[bytes]:
        return [b"".join(r.strings) for r in self.query(name, "TXT")]

    def dkim_txt(self, name: bytes | str, timeout: float = 5) -> bytes | None:
        """dkimpy's dnsfunc: the joined TXT strings of a selector record."""
        if isinstance(name, bytes):
            name = name.decode("ascii", "replace")
        records = self.txt(name.rstrip("."))
        return records[0] if records else None

    def spf_lookup(self, name: str, qtype: str, strict: bool = True, timeout: float = 5) -> list:
        """pyspf's DNSLookup, answering as pyspf's own dnspython adapter does."""
        try:
            answers = self.query(name, qtype)
        except DnsTemporaryError as exc:
            raise spf.TempError(f"DNS {exc}") from exc
        result = []
        for rdata in answers:
            if qtype in ("A", "AAAA"):
                result.append(((name, qtype), rdata.address))
            elif qtype == "MX":
                result.append(((name, qtype), (rdata.preference, rdata.exchange)))
            elif qtype == "PTR":
                result.append(((name, qtype), rdata.target.to_text(True)))
            elif qtype in ("TXT", "SPF"):
                result.append(((name, qtype), rdata.strings))
        return result


def check_spf(
    dns_txt: DnsTxt, client_ip: str | None, mail_from: str, helo: str | None, timeout: float
) -> tuple[str, str | None]:
    if not client_ip:
        return "none", None
    sender = mail_from or f"postmaster@{helo or 'unknown'}"
    domain = sender.rpartition("@")[2].lower() or None
    query = spf.query(i=client_ip, s=sender, h=helo or "unknown", timeout=timeout, querytime=timeout)
    result, _code, _explanation = query.check()
    return str(result).lower(), domain


def check_dkim(dns_txt: DnsTxt, raw: bytes, timeout: float, max_signatures: int = 5) -> list[DkimOutcome]:
    count = len(re.findall(rb"(?im)^dkim-signature\s*:", raw.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]))
    outcomes = []
    for index in range(min(count, max_signatures)):
        verifier = dkim.DKIM(raw, timeout=timeout, minkey=1024)
        domain = selector = None
        try:
            ok = verifier.verify(idx=index, dnsfunc=dns_txt.dkim_txt)
            domain = verifier.domain.decode() if verifier.domain else None
            selector = verifier.selector.decode() if verifier.selector else None
            outcomes.append(DkimOutcome("pass" if ok else "fail", domain, selector))
        except DnsTemporaryError:
            outcomes.append(DkimOutcome("temperror", domain, selector))
        except dkim.ValidationError as exc:
            # A body that no longer matches its hash is a failed signature; a malformed one is a permerror.
            outcomes.append(DkimOutcome("fail" if "mismatch" in str(exc) else "permerror", domain, selector))
        except Exception as exc:  # dkimpy raises assorted errors on malformed signatures or keys
            log.info("dkim verify error", extra={"error": f"{type(exc).__name__}: {exc}"[:200]})
            outcomes.append(DkimOutcome("permerror", domain, selector))
    return outcomes


def check_dmarc(dns_txt: DnsTxt, from_domain: str | None, checks: Checks) -> tuple[str, str | None]:
    if not from_domain:
        return "none", None
    record = None
    try:
        for candidate in dict.fromkeys([from_domain, organizational_domain(from_domain)]):
            for txt in dns_txt.txt(f"_dmarc.{candidate}"):
                record = parse_dmarc_record(txt.decode("utf-8", "replace"))
                if record:
                    break
            if record:
                break
    except DnsTemporaryError:
        return "temperror", None
    return evaluate_dmarc(record, from_domain, checks)


class Authenticator:
    """Runs the three checks of one mail in worker threads, within one time box."""

    def __init__(
        self,
        resolver: dns.resolver.Resolver,
        *,
        authserv_id: str,
        dns_timeout: float,
        time_box: float,
        threads: int = 16,
    ) -> None:
        self.dns_txt = DnsTxt(resolver)
        # pyspf resolves through a module-level function; one process has one resolver, so install it once.
        spf.DNSLookup = self.dns_txt.spf_lookup
        self.authserv_id = authserv_id
        self.dns_timeout = dns_timeout
        self.time_box = time_box
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="auth")

    def _run_all(
        self, raw: bytes, client_ip: str | None, mail_from: str, helo: str | None, from_domain: str | None
    ) -> Checks:
        checks = Checks()
        try:
            checks.spf, checks.spf_domain = check_spf(self.dns_txt, client_ip, mail_from, helo, self.dns_timeout)
        except Exception as exc:
            log.info("spf check error", extra={"error": f"{type(exc).__name__}: {exc}"[:200]})
            checks.spf = "temperror"
        checks.dkim = check_dkim(self.dns_txt, raw, self.dns_timeout)
        checks.dmarc, checks.dmarc_policy = check_dmarc(self.dns_txt, from_domain, checks)
        return checks

    async def authenticate(
        self, raw: bytes, *, client_ip: str | None, mail_from: str, helo: str | None, from_domain: str | None
    ) -> AuthenticationResult:
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._executor, self._run_all, raw, client_ip, mail_from, helo, from_domain)
        try:
            checks = await asyncio.wait_for(future, self.time_box)
        except TimeoutError:
            checks = Checks(spf="temperror", dkim=[DkimOutcome("temperror")], dmarc="temperror")
        return summarise(checks, format_header(self.authserv_id, checks, mail_from, from_domain))

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
