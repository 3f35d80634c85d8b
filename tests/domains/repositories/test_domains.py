"""MongoDB's single-document atomicity is the only concurrency control here: a due check is taken by exactly one of
many verifier rounds (and released only by its owner), a key moves from one state to the next exactly once, and a
domain has at most one pending key however many rotations race."""

import asyncio
from datetime import UTC, datetime, timedelta

from tests.domains.conftest import DomainsHarness, create, headers, published, record, sender_headers
from tests.support.dns_server import DnsServer

CALLERS = 8


async def test_of_concurrent_verifier_rounds_exactly_one_checks_a_due_domain(harness: DomainsHarness) -> None:
    view = await create(harness, dkim_key_bits=1024)
    harness.manager.clock = lambda: datetime.now(UTC) + timedelta(hours=1)
    rounds = await asyncio.gather(*(harness.manager.run_due_checks() for _ in range(CALLERS)))
    assert sorted(rounds) == [0] * (CALLERS - 1) + [1]
    doc = await harness.db.domains.find_one({"_id": view["id"]})
    assert doc["check_attempts"] == 1 and "check_lease" not in doc  # the owner released its lease


async def test_a_lease_left_by_a_dead_replica_runs_out_and_only_its_owner_releases_it(harness: DomainsHarness) -> None:
    view = await create(harness, dkim_key_bits=1024)
    repo = harness.manager.repo
    now = datetime.now(UTC) + timedelta(hours=1)  # the domain's first check is due
    assert (await repo.take_due_check(now - timedelta(minutes=30), "dead"))["_id"] == view["id"]  # then it died
    assert await repo.take_due_check(now - timedelta(minutes=25), "early") is None  # its lease still holds
    assert (await repo.take_due_check(now, "alive"))["_id"] == view["id"]  # the lease ran out: taken over

    # The first owner, had it only been slow, can no longer write its result nor release the successor's lease.
    assert await repo.update_domain(view["id"], {"status": "invalid"}, lease_owner="dead") is None
    doc = await harness.db.domains.find_one({"_id": view["id"]})
    assert doc["status"] == "pending" and doc["check_lease"]["owner"] == "alive"
    released = await repo.update_domain(view["id"], {"status": "pending"}, lease_owner="alive")
    assert released is not None and "check_lease" not in released


async def test_of_concurrent_moves_of_a_key_exactly_one_wins(harness: DomainsHarness) -> None:
    view = await create(harness, dkim_key_bits=1024)
    [key] = await harness.manager.repo.live_keys(view["id"])
    now = datetime.now(UTC)
    moved = await asyncio.gather(
        *(
            harness.manager.repo.move_key(key["_id"], from_state="pending", to_state="active", at=now)
            for _ in range(CALLERS)
        )
    )
    assert sorted(moved) == [False] * (CALLERS - 1) + [True]


async def test_of_concurrent_rotations_exactly_one_starts(harness: DomainsHarness, dns: DnsServer) -> None:
    view = await create(harness, dkim_key_bits=1024)
    dns.set_records(published(view))
    await harness.client.post(f"/v1/domains/{view['id']}/verify", headers=headers())
    responses = await asyncio.gather(
        *(harness.client.post(f"/v1/domains/{view['id']}/dkim/rotate", headers=headers()) for _ in range(CALLERS))
    )
    assert sorted(r.status_code for r in responses) == [200] + [409] * (CALLERS - 1)
    states = [k["state"] for k in await harness.manager.repo.live_keys(view["id"])]
    assert sorted(states) == ["active", "pending"]


async def test_concurrent_checks_switch_a_rotation_once(harness: DomainsHarness, dns: DnsServer) -> None:
    view = await create(harness, dkim_key_bits=1024)
    old = record(view, "dkim")["selector"]
    dns.set_records(published(view))
    await harness.client.post(f"/v1/domains/{view['id']}/verify", headers=headers())
    rotating = (await harness.client.post(f"/v1/domains/{view['id']}/dkim/rotate", headers=headers())).json()
    new = record(rotating, "dkim", "pending")["selector"]
    dns.set_records(published(rotating))

    domain = await harness.db.domains.find_one({"_id": view["id"]})
    await asyncio.gather(*(harness.manager.check(domain) for _ in range(CALLERS)))
    keys = {k["selector"]: k["state"] for k in await harness.manager.repo.live_keys(view["id"])}
    assert keys == {old: "retiring", new: "active"}
    doc = await harness.db.domains.find_one({"_id": view["id"]})
    assert doc["signing_selector"] == new  # no check stored a verdict from before the switch
    key = await harness.client.get("/internal/signing-key?domain=acme.test&account_id=acct-a", headers=sender_headers())
    assert key.json()["selector"] == new
