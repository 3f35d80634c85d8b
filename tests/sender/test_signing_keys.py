"""The signing-key source: the domains service is asked once per domain, a 404 means unsigned, `domain.changed`
invalidates, and an unreachable or failing service is `SigningKeyUnavailable`."""

import asyncio

import httpx
import pytest

from mailstream_sender.signing import SigningKeyUnavailable
from mailstream_sender.signing_keys import SigningKeyCache
from tests.sender.domains_stub import DomainKey, DomainsStub
from tests.sender.test_signing import ACCOUNT, RSA_1024, RSA_2048


@pytest.mark.integration
async def test_key_cache_fetches_once_per_domain_handles_404_and_invalidation():
    stub = DomainsStub("secret", {"acme.test": DomainKey("acme.test", ACCOUNT, "s1", RSA_2048)}).start()
    try:
        async with httpx.AsyncClient(timeout=5) as http:
            cache = SigningKeyCache(http, stub.url, "secret", ttl_seconds=300)
            keys = await asyncio.gather(*(cache.get("ACME.test", ACCOUNT) for _ in range(20)))
            assert {k.selector for k in keys if k} == {"s1"}
            assert len(stub.requests) == 1
            assert stub.requests[0] == {"path": "/internal/signing-key", "domain": "acme.test", "account_id": ACCOUNT}

            assert await cache.get("other.test", ACCOUNT) is None  # no verified key: send unsigned
            assert await cache.get("other.test", ACCOUNT) is None
            assert len(stub.requests) == 2

            stub.keys["acme.test"] = DomainKey("acme.test", ACCOUNT, "s2", RSA_1024)  # rotated
            assert (await cache.get("acme.test", ACCOUNT)).selector == "s1"
            cache.invalidate("acme.test")
            assert (await cache.get("acme.test", ACCOUNT)).selector == "s2"

            stub.status_override = 503
            cache.invalidate("acme.test")
            with pytest.raises(SigningKeyUnavailable, match="503"):
                await cache.get("acme.test", ACCOUNT)

            bad_token = SigningKeyCache(http, stub.url, "wrong")
            with pytest.raises(SigningKeyUnavailable, match="401"):
                await bad_token.get("acme.test", ACCOUNT)
    finally:
        stub.stop()


async def test_key_cache_reports_an_unreachable_domains_service():
    async with httpx.AsyncClient(timeout=2) as http:
        cache = SigningKeyCache(http, "http://127.0.0.1:1", "secret")
        with pytest.raises(SigningKeyUnavailable, match="unreachable"):
            await cache.get("acme.test", ACCOUNT)
