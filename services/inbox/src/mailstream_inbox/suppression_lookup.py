"""Which of a reply's recipients are on the account's suppression list: asked of the sender, which owns the list.

The gateway's own credential opens the sender's public suppression routes for an account (the same call the
gateway forwards for `GET /v1/suppressions/{address}`), so inbox keeps no copy of the list. An answer that does not
come (the sender is down or slow) is "unknown", never "not suppressed": the caller says so instead of guessing,
and the sender still refuses a suppressed address when the mail is sent.
"""

import asyncio
import logging
from dataclasses import dataclass
from urllib.parse import quote

import httpx

from mailstream_common import logs

log = logging.getLogger(__name__)

LOOKUP_TIMEOUT_SECONDS = 3.0


@dataclass(frozen=True)
class SuppressionAnswer:
    suppressed: dict[str, str]  # address -> the suppression's reason
    unknown: tuple[str, ...] = ()  # addresses the sender could not be asked about


class SuppressionLookup:
    def __init__(self, http: httpx.AsyncClient, sender_url: str, gateway_token: str) -> None:
        self.http = http
        self.sender_url = sender_url.rstrip("/")
        self.gateway_token = gateway_token

    async def check(self, account_id: str, addresses: list[str]) -> SuppressionAnswer:
        unique = list(dict.fromkeys(a.strip().lower() for a in addresses if a.strip()))
        answers = await asyncio.gather(*(self._one(account_id, address) for address in unique))
        suppressed = {
            address: reason for address, reason in zip(unique, answers, strict=True) if isinstance(reason, str)
        }
        unknown = tuple(address for address, reason in zip(unique, answers, strict=True) if reason is False)
        return SuppressionAnswer(suppressed, unknown)

    async def _one(self, account_id: str, address: str) -> str | bool | None:
        """The reason it is suppressed, None when it is not, False when the sender did not answer."""
        headers = {
            "X-Internal-Token": self.gateway_token,
            "X-Account-Id": account_id,
            "X-Role": "agent",
            "X-Correlation-Id": logs.correlation_id.get() or logs.new_correlation_id(),
        }
        url = f"{self.sender_url}/v1/suppressions/{quote(address, safe='@')}"
        try:
            response = await self.http.get(url, headers=headers, timeout=LOOKUP_TIMEOUT_SECONDS)
        except httpx.HTTPError as exc:
            log.warning("suppression lookup failed", extra={"error": type(exc).__name__})
            return False
        if response.status_code == 404:
            return None
        if response.status_code == 200:
            return str(response.json().get("reason") or "suppressed")
        log.warning("suppression lookup answered %s", response.status_code)
        return False
