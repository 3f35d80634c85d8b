"""Domain use cases: add, show, verify, rotate, delete, and hand sender its signing key.

Routes and the background verifier call these; the rules live in `records`, `record_checks` and `record_plan`, the I/O in
the repository, the DNS lookup and the event publisher passed in.
"""

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from mailstream_common.contracts import DomainChanged

from . import keys as keymod
from . import record_plan
from . import records as rec
from .dns_lookup import DnsLookup
from .metrics import CHECKS, DOMAIN_EVENTS, RECORDS_LOST
from .name_validation import registrable_domain, validate_sending_domain
from .record_checks import (
    RecordCheck,
    check_dkim,
    check_dmarc,
    check_spf,
    keep_known_result,
)
from .repositories.domains import DomainRepository, Duplicate

log = logging.getLogger(__name__)

Publish = Callable[[DomainChanged], Awaitable[None]]


class DomainExists(Exception):
    pass


class RotationInProgress(Exception):
    def __init__(self, selector: str) -> None:
        super().__init__(f"a rotation is already in progress: selector {selector} waits for its DNS record")
        self.selector = selector


def _now() -> datetime:
    return datetime.now(UTC)


class DomainManager:
    def __init__(
        self,
        repo: DomainRepository,
        vault: keymod.KeyVault,
        lookup: DnsLookup,
        publish: Publish,
        policy: record_plan.RecordPolicy,
        *,
        ed25519: bool = False,
        recheck_min_seconds: float = 300,
        recheck_max_seconds: float = 6 * 3600,
        recheck_verified_seconds: float = 24 * 3600,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.repo = repo
        self.vault = vault
        self.lookup = lookup
        self.publish = publish
        self.policy = policy
        self.ed25519 = ed25519
        self.recheck_min = recheck_min_seconds
        self.recheck_max = recheck_max_seconds
        self.recheck_verified = recheck_verified_seconds
        self.clock = clock

    # --- views ----------------------------------------------------------------------------------------------

    async def view(self, domain: dict[str, Any], keys: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        if keys is None:
            keys = await self.repo.live_keys(domain["_id"])
        return {
            "id": domain["_id"],
            "name": domain["name"],
            "status": domain["status"],
            "dkim_key_bits": domain["dkim_key_bits"],
            "signing_selector": domain.get("signing_selector"),
            "created_at": domain["created_at"],
            "checked_at": domain.get("last_checked_at"),
            "next_check_at": domain.get("next_check_at"),
            "dns_records": record_plan.present_records(domain, keys, self.policy),
        }

    async def get(self, account_id: str, domain_id: str) -> dict[str, Any] | None:
        domain = await self.repo.domain(account_id, domain_id)
        return await self.view(domain) if domain else None

    async def list_for(self, account_id: str, *, after_name: str | None, limit: int) -> list[dict[str, Any]]:
        domains = await self.repo.list_domains(account_id, after_name=after_name, limit=limit)
        keys = await self.repo.live_keys_of([d["_id"] for d in domains])  # one query for the whole page
        return [await self.view(d, keys[d["_id"]]) for d in domains]

    # --- commands -------------------------------------------------------------------------------------------

    async def create(self, account_id: str, raw_name: str, bits: int) -> dict[str, Any]:
        name = validate_sending_domain(raw_name)
        now = self.clock()
        domain = {
            "_id": uuid.uuid4().hex,
            "account_id": account_id,
            "name": name,
            "dkim_key_bits": bits,
            "status": "pending",
            "signing_selector": None,
            "checks": {},
            "observed_spf": [],
            "created_at": now,
            "updated_at": now,
            "check_attempts": 0,
            "next_check_at": now + timedelta(seconds=self.recheck_min),
        }
        try:
            await self.repo.insert_domain(domain)
        except Duplicate:  # the unique (account_id, name) index: the account has it already
            raise DomainExists(name) from None
        await self._add_key(domain, bits, rotation=False, existing=[])
        log.info("domain added", extra={"domain_id": domain["_id"], "domain": name, "account_id": account_id})
        await self._announce(domain, "created")
        return await self.view(domain)

    async def _add_key(self, domain: dict[str, Any], bits: int, *, rotation: bool, existing: list[str]) -> str:
        # Key generation is CPU work: keep the event loop free meanwhile.
        pair = await asyncio.to_thread(keymod.generate_rsa, bits)
        selector = keymod.next_selector(self.clock(), existing)
        key: dict[str, Any] = {
            "_id": uuid.uuid4().hex,
            "domain_id": domain["_id"],
            "account_id": domain["account_id"],
            "selector": selector,
            "algorithm": "rsa",
            "bits": bits,
            "public_key_b64": pair.public_key_b64,
            "private_key_encrypted": self.vault.encrypt(pair.private_pem),
            "ed25519": None,
            "state": "pending",
            "rotation": rotation,
            "created_at": self.clock(),
        }
        if self.ed25519:
            ed = keymod.generate_ed25519()
            key["ed25519"] = {
                "selector": f"{selector}e",
                "public_key_b64": ed.public_key_b64,
                "private_key_encrypted": self.vault.encrypt(ed.private_pem),
            }
        await self.repo.insert_key(key)
        return selector

    async def rotate(self, account_id: str, domain_id: str) -> dict[str, Any] | None:
        domain = await self.repo.domain(account_id, domain_id)
        if domain is None:
            return None
        keys = await self.repo.live_keys(domain_id)
        pending = next((k for k in keys if k["state"] == "pending"), None)
        has_active = any(k["state"] == "active" for k in keys)
        if pending is not None:
            if has_active:
                raise RotationInProgress(pending["selector"])
            # Nothing signs yet: the unpublished key is simply replaced (e.g. it was pasted somewhere it should not).
            await self.repo.move_key(pending["_id"], from_state="pending", to_state="retired", at=self.clock())
        try:
            selector = await self._add_key(
                domain, domain["dkim_key_bits"], rotation=has_active, existing=await self.repo.selectors(domain_id)
            )
        except Duplicate:  # a concurrent rotation inserted its pending key first (one per domain)
            waiting = next((k for k in await self.repo.live_keys(domain_id) if k["state"] == "pending"), None)
            raise RotationInProgress(waiting["selector"] if waiting else "(new)") from None
        domain = await self.repo.update_domain(
            domain_id,
            {
                "updated_at": self.clock(),
                "check_attempts": 0,
                "next_check_at": self.clock() + timedelta(seconds=self.recheck_min),
            },
        )
        assert domain is not None
        log.info("dkim rotation started", extra={"domain_id": domain_id, "selector": selector})
        return await self.view(domain)

    async def delete(self, account_id: str, domain_id: str) -> bool:
        domain = await self.repo.domain(account_id, domain_id)
        if domain is None or not await self.repo.delete_domain(account_id, domain_id):
            return False
        log.info("domain deleted", extra={"domain_id": domain_id, "domain": domain["name"]})
        await self._announce({**domain, "status": "deleted", "signing_selector": None}, "deleted")
        return True

    async def verify(self, account_id: str, domain_id: str) -> dict[str, Any] | None:
        domain = await self.repo.domain(account_id, domain_id)
        if domain is None:
            return None
        return await self.view(await self.check(domain))

    async def signing_key(self, account_id: str, name: str) -> dict[str, Any] | None:
        """The active, verified key with its private PEM: the only way a private key leaves this service."""
        domain = await self.repo.domain_by_name(
            account_id, name.strip().rstrip(".").lower(), ["name", "signing_selector", "checks"]
        )
        if domain is None or not domain.get("signing_selector"):
            return None
        key = await self.repo.active_key_with_secret(account_id, domain["_id"], domain["signing_selector"])
        if key is None:
            return None
        result: dict[str, Any] = {
            "domain": domain["name"],
            "selector": key["selector"],
            "algorithm": "rsa-sha256",
            "private_key_pem": self.vault.decrypt(key["private_key_encrypted"]).decode("ascii"),
            "ed25519": None,
        }
        ed = key.get("ed25519")
        checks = domain.get("checks") or {}
        if ed and (checks.get(record_plan.dkim_check_key(ed["selector"])) or {}).get("status") == "verified":
            ed_pem = self.vault.decrypt(ed["private_key_encrypted"])
            result["ed25519"] = {
                "selector": ed["selector"],
                "private_key_pem": ed_pem.decode("ascii"),
                "private_key_b64": keymod.ed25519_seed_b64(ed_pem),  # the form dkimpy's ed25519-sha256 signer takes
            }
        return result

    # --- verification ---------------------------------------------------------------------------------------

    async def _judge(
        self, domain: dict[str, Any], keys: list[dict[str, Any]]
    ) -> tuple[dict[str, RecordCheck], list[str]]:
        """Look every record of `domain` up (concurrently) and judge it; also return the SPF records seen."""
        name = domain["name"]
        organisational = registrable_domain(name) or name
        dkim_items = [e for e in record_plan.expected_records(domain, keys, self.policy) if e.spec.purpose == "dkim"]
        names = [e.spec.host for e in dkim_items] + [name, rec.dmarc_host(name)]
        if organisational != name:
            names.append(rec.dmarc_host(organisational))
        answers = dict(zip(names, await asyncio.gather(*(self.lookup.txt(n) for n in names)), strict=True))

        results: dict[str, RecordCheck] = {}
        for item in dkim_items:
            assert item.public_key_b64 is not None and item.algorithm is not None
            results[item.check_key] = check_dkim(
                answers[item.spec.host], expected=item.spec, public_key_b64=item.public_key_b64, key_type=item.algorithm
            )
        spf_answer = answers[name]
        observed_spf = (
            [v for v in spf_answer.values if rec.is_spf(v)]
            if spf_answer.outcome in ("answer", "nodata", "nxdomain")
            else list(domain.get("observed_spf") or [])  # unknown now: keep what was seen last time
        )
        lookup_count = await self.lookup.spf_lookup_count(observed_spf[0]) if len(observed_spf) == 1 else None
        results["spf"] = check_spf(
            spf_answer,
            required=self.policy.required_spf,
            plan=record_plan.spf_plan({**domain, "observed_spf": observed_spf}, self.policy),
            lookup_count=lookup_count,
        )
        results["dmarc"] = check_dmarc(
            answers[rec.dmarc_host(name)],
            answers.get(rec.dmarc_host(organisational)),
            domain=name,
            organisational_domain=organisational,
            bounce_domain=self.policy.bounce_domain,
            recommended=rec.recommended_dmarc(self.policy.dmarc_rua),
        )
        return results, observed_spf

    async def check(self, domain: dict[str, Any], *, lease_owner: str | None = None) -> dict[str, Any]:
        """Look every record up, judge it, apply key transitions, store, and announce what changed. A scheduled
        check passes the owner token of its lease: its result is stored only while it still holds the lease."""
        now = self.clock()
        keys = await self.repo.live_keys(domain["_id"])
        results, observed_spf = await self._judge(domain, keys)

        previous = domain.get("checks") or {}
        checks: dict[str, dict[str, Any]] = {}
        for key, result in results.items():
            before = previous.get(key) or {}
            result = keep_known_result(result, before.get("status"), before.get("detail"))
            CHECKS.labels(key.split(":")[0], result.status).inc()
            if before.get("status") == "verified" and result.status != "verified":
                RECORDS_LOST.labels(key.split(":")[0]).inc()
                log.warning(
                    "verified record lost",
                    extra={
                        "domain_id": domain["_id"],
                        "domain": domain.get("name"),
                        "record": key,
                        "problem": result.problem,
                    },
                )
            checks[key] = {
                "status": result.status,
                "problem": result.problem,
                "detail": result.detail,
                "checked_at": now,
            }

        attempted, rotated = await self._apply_key_transitions(keys, checks, now)
        if attempted:  # read back what won: this check's moves, or a concurrent check's
            keys = await self.repo.live_keys(domain["_id"])
        checked = {**domain, "checks": checks, "observed_spf": observed_spf}
        status = record_plan.domain_status(checked, keys)
        selector = record_plan.signing_selector(checked, keys)
        attempts = int(domain.get("check_attempts", 0))
        settled = status == "verified" and not any(k["state"] == "pending" for k in keys)
        delay = record_plan.next_check_delay(
            attempts,
            settled=settled,
            minimum=self.recheck_min,
            maximum=self.recheck_max,
            settled_every=self.recheck_verified,
        )
        updated = await self.repo.update_domain(
            domain["_id"],
            {
                "checks": checks,
                "observed_spf": observed_spf,
                "status": status,
                "signing_selector": selector,
                "last_checked_at": now,
                "updated_at": now,
                "check_attempts": 0 if settled else attempts + 1,
                "next_check_at": now + timedelta(seconds=delay),
            },
            lease_owner=lease_owner,
        )
        if updated is None:  # deleted while we were checking, or the lease ran out and another replica took over
            return {**checked, "status": status, "signing_selector": selector}
        if rotated is not None and selector == rotated:
            await self._announce(updated, "key_rotated")
        elif status != domain.get("status") or selector != domain.get("signing_selector"):
            await self._announce(updated, "status_changed")
        return updated

    async def _apply_key_transitions(
        self, keys: list[dict[str, Any]], checks: dict[str, dict[str, Any]], now: datetime
    ) -> tuple[bool, str | None]:
        """A pending key whose record verified becomes active (the previous active one starts retiring); retiring
        keys past the grace period are retired. Each move is conditional on the key's state, so of concurrent checks
        exactly one makes it. Returns (whether any move was tried, the selector this check made active in a
        rotation or None)."""
        attempted = False
        rotated = None
        active = next((k for k in keys if k["state"] == "active"), None)
        for key in keys:
            verified = checks.get(record_plan.dkim_check_key(key["selector"]), {}).get("status") == "verified"
            if key["state"] == "pending" and verified:
                attempted = True
                if active is not None:
                    await self.repo.move_key(active["_id"], from_state="active", to_state="retiring", at=now)
                if await self.repo.move_key(key["_id"], from_state="pending", to_state="active", at=now):
                    log.info("dkim key active", extra={"domain_id": key["domain_id"], "selector": key["selector"]})
                    rotated = key["selector"] if active is not None else None
                    active = key
            elif record_plan.retiring_expired(key, now, self.policy.rotation_grace):
                attempted = True
                await self.repo.move_key(key["_id"], from_state="retiring", to_state="retired", at=now)
        return attempted, rotated

    async def run_due_checks(self, limit: int = 20) -> int:
        """One round of the background verifier: take due checks one at a time (each under a lease with this
        round's owner token; concurrent rounds of other replicas take other domains) and run them."""
        checked = 0
        while checked < limit:
            owner = uuid.uuid4().hex
            domain = await self.repo.take_due_check(self.clock(), owner)
            if domain is None:
                break
            checked += 1
            try:
                await self.check(domain, lease_owner=owner)
            except Exception:  # the lease runs out and the domain is due again
                log.exception("scheduled check failed", extra={"domain_id": domain["_id"]})
        return checked

    async def _announce(self, domain: dict[str, Any], change: str) -> None:
        event = DomainChanged(
            change=change,  # type: ignore[arg-type]
            account_id=domain["account_id"],
            domain_id=domain["_id"],
            name=domain["name"],
            status=domain["status"],
            signing_selector=domain.get("signing_selector"),
        )
        try:
            await self.publish(event)
            DOMAIN_EVENTS.labels(change, "published").inc()
        except Exception as exc:
            # Sender also asks /internal/signing-key at send time, so a lost event delays nothing for long.
            DOMAIN_EVENTS.labels(change, "failed").inc()
            log.warning("domain.changed not published", extra={"domain_id": domain["_id"], "error": repr(exc)})
