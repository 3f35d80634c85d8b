"""TXT lookups through dnspython's async resolver, time-boxed, with every failure named (never an exception).

`DNS_NAMESERVERS` (comma list of ip[:port]) replaces the system resolver; tests point it at a local dnsmasq.
"""

import logging

import dns.asyncresolver
import dns.exception
import dns.nameserver
import dns.rdatatype
import dns.resolver

from . import records as rec
from .record_checks import TxtAnswer

log = logging.getLogger(__name__)

MAX_SPF_LOOKUPS_WALKED = 30  # far beyond the limit of 10: enough to report "too many" without walking forever


def parse_nameserver(entry: str) -> tuple[str, int]:
    """`1.2.3.4`, `1.2.3.4:5353`, `[::1]:5353` or `::1` -> (address, port)."""
    entry = entry.strip()
    if entry.startswith("["):
        address, _, rest = entry[1:].partition("]")
        return address, int(rest.lstrip(":") or 53)
    if entry.count(":") == 1:
        address, port = entry.split(":")
        return address, int(port)
    return entry, 53


class DnsLookup:
    def __init__(self, nameservers: list[str] | None = None, *, timeout: float = 5.0) -> None:
        if nameservers:
            resolver = dns.asyncresolver.Resolver(configure=False)
            resolver.nameservers = [
                dns.nameserver.Do53Nameserver(address, port)
                for address, port in (parse_nameserver(n) for n in nameservers)
            ]
        else:
            resolver = dns.asyncresolver.Resolver()
        resolver.lifetime = timeout
        resolver.timeout = min(timeout, 2.0)
        resolver.cache = None  # every verification must see the zone as it is now
        self._resolver = resolver

    async def txt(self, name: str) -> TxtAnswer:
        try:
            answer = await self._resolver.resolve(name, dns.rdatatype.TXT, search=False)
        except dns.resolver.NXDOMAIN:
            return TxtAnswer(name, "nxdomain")
        except dns.resolver.NoAnswer:
            return TxtAnswer(name, "nodata")
        except dns.resolver.NoNameservers as exc:
            return TxtAnswer(name, "servfail", error=_rcode_of(exc))
        except (dns.resolver.LifetimeTimeout, dns.exception.Timeout):
            return TxtAnswer(name, "timeout")
        except dns.exception.DNSException as exc:  # e.g. a malformed answer: unknown, not missing
            log.warning("dns lookup failed", extra={"dns_name": name, "error": repr(exc)})
            return TxtAnswer(name, "servfail", error=type(exc).__name__)
        records = tuple(
            tuple(s.decode("utf-8", errors="replace") for s in rdata.strings)
            for rdata in answer  # type: ignore[attr-defined]
        )
        return TxtAnswer(name, "answer", records)

    async def spf_lookup_count(self, spf_text: str) -> int | None:
        """DNS lookups an SPF evaluation of `spf_text` costs, nested includes included (RFC 7208 4.6.4).

        None when a nested record could not be fetched (the count is then unknown).
        """
        total = 0
        queue = [spf_text]
        seen: set[str] = set()
        while queue:
            direct, nested = rec.spf_lookup_targets(rec.parse_spf(queue.pop(0)))
            total += direct
            for target in nested:
                if target in seen or total > MAX_SPF_LOOKUPS_WALKED:
                    continue
                seen.add(target)
                answer = await self.txt(target)
                if answer.outcome in ("timeout", "servfail"):
                    return None
                queue.extend(v for v in answer.values if rec.is_spf(v))
        return total


def _rcode_of(exc: dns.resolver.NoNameservers) -> str:
    text = str(exc)
    for rcode in ("SERVFAIL", "REFUSED", "NOTIMP", "FORMERR"):
        if rcode in text:
            return rcode
    return "no name server answered"
