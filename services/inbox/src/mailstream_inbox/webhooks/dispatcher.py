"""The dispatcher's two consumers: facts in (`webhooks.events`) become deliveries, and attempts
(`webhooks.attempts`) send them.

Why two queues: a fact is turned into one delivery per matching subscription at once and cheaply, while the HTTP
attempts (slow, retried over days) wait on the attempts queue, whose TTL tiers are the delay ladder
(`mailstream_common.delays`): the broker holds every waiting retry, no process polls, and any replica may take
any attempt. Delivery is at least once; the `webhook-id` is the delivery's id, the same on every attempt, so a
receiver that remembers ids sees each fact once.

Idempotency: a delivery's `_id` derives from (subscription, fact), so a redelivered fact finds its delivery; an
attempt command names the delivery's `sequence`, and a command whose sequence the delivery has moved past is
stale; an HTTP attempt is made only under a lease (one `find_one_and_update`), so two replicas never send one
step twice; a dispatcher killed mid-request leaves the lease to run out, and its unacked command comes back.
"""

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from pymongo.asynchronous.database import AsyncDatabase

from mailstream_common import topology
from mailstream_common.broker import Broker, Delivery, Retry
from mailstream_common.contracts import Event, StreamChanged, WebhookAttemptDue, WebhookSubscriptionDisabled

from . import metrics, payloads, sending
from . import repositories as repo
from .destinations import display_url
from .schedule import retry_delay
from .settings import WebhookSettings
from .signing import SecretBox, signed_headers

log = logging.getLogger(__name__)

LEASE_MARGIN_SECONDS = 10.0
EARLY_TOLERANCE = timedelta(seconds=0.5)  # a command this close to its time is not sent down the ladder again


def _now() -> datetime:
    return datetime.now(UTC)


class Dispatcher:
    def __init__(
        self, db: AsyncDatabase, broker: Broker, settings: WebhookSettings, box: SecretBox, client: httpx.AsyncClient
    ) -> None:
        self.db = db
        self.broker = broker
        self.settings = settings
        self.box = box
        self.client = client
        self.delays = settings.delays

    def register(self) -> None:
        prefetch = self.settings.concurrency
        self.broker.consume(topology.WEBHOOKS_EVENTS, self.on_event, topology.WEBHOOKS_EVENTS.events, prefetch=prefetch)
        self.broker.consume(topology.WEBHOOKS_ATTEMPTS, self.on_attempt_due, WebhookAttemptDue, prefetch=prefetch)

    # --- facts -> deliveries --------------------------------------------------------------------------------------

    async def on_event(self, event: Event, delivery: Delivery) -> None:
        if isinstance(event, StreamChanged):
            found = await self._stream_status_event(event)
            webhook_events = [found] if found is not None else []
        else:
            webhook_events = payloads.from_event(event)
        for webhook_event in webhook_events:
            for subscription in await repo.matching_subscriptions(
                self.db, webhook_event.account_id, webhook_event.type
            ):
                await self._create_and_schedule(subscription, webhook_event)

    async def _stream_status_event(self, event: StreamChanged) -> payloads.WebhookEvent | None:
        held = await repo.get_stream_state(self.db, event.stream_id)
        if held is not None and held.get("event_id") == event.event_id:
            # A redelivery of the event that made the held state: decide as the first time did.
            return payloads.stream_status_event(event, held.get("previous_status"))
        if held is not None and held["version"] >= event.version:
            return None  # older than what was seen
        previous = held["status"] if held is not None else None
        saved = await repo.save_stream_state(
            self.db,
            event.stream_id,
            version=event.version,
            status=payloads.stream_status(event),
            event_id=event.event_id,
            previous_status=previous,
        )
        return payloads.stream_status_event(event, previous) if saved else None

    async def _create_and_schedule(self, subscription: dict[str, Any], webhook_event: payloads.WebhookEvent) -> None:
        stored, created = await repo.create_delivery(
            self.db,
            subscription=subscription,
            event_type=webhook_event.type,
            fact_key=webhook_event.fact_key,
            body=webhook_event.body(),
            now=_now(),
        )
        if created or (stored["state"] == "pending" and stored["sequence"] == 1 and stored.get("attempts", 0) == 0):
            # New, or this fact came again before its first attempt (perhaps the process that created it died
            # before publishing): a duplicate command is harmless, a missing one would strand the delivery.
            await self._publish_schedule(stored, mark=False)

    async def _publish_schedule(self, delivery: dict[str, Any], *, mark: bool = True) -> None:
        """Publish the command for the delivery's current sequence, then mark it published (an outbox: if this
        process dies in between, the redelivered message that led here publishes it again)."""
        due_at = delivery["next_attempt_at"]
        command = WebhookAttemptDue(delivery_id=delivery["_id"], sequence=delivery["sequence"], due_at=due_at)
        remaining = (due_at - _now()).total_seconds()
        if remaining > 0.5:
            await self.broker.publish_delayed(command, topology.WEBHOOKS_ATTEMPTS, remaining)
        else:
            await self.broker.publish(command)
        if mark:
            await repo.schedule_published(self.db, delivery["_id"], delivery["sequence"])

    # --- attempts -------------------------------------------------------------------------------------------------

    async def on_attempt_due(self, command: WebhookAttemptDue, delivery: Delivery) -> None:
        now = _now()
        lease_seconds = self.settings.attempt_timeout_seconds + LEASE_MARGIN_SECONDS
        # The common case in one write: the delivery is pending at this step, due, and nobody holds it.
        claimed = await repo.claim(
            self.db, command.delivery_id, command.sequence, now, lease_seconds, due_by=now + EARLY_TOLERANCE
        )
        if claimed is None:
            await self._not_claimed(command, now, lease_seconds)
            return
        subscription = await repo.get_subscription_for_sending(self.db, claimed["subscription_id"])
        if subscription is None or not subscription.get("enabled"):
            reason = "subscription deleted" if subscription is None else "subscription disabled"
            await repo.fail_without_attempt(self.db, claimed["_id"], claimed["sequence"], reason)
            metrics.DELIVERIES.labels("failed").inc()
            if subscription is not None:
                await self._announce_disabled(subscription)
            return
        await self._attempt(claimed, subscription)

    async def _not_claimed(self, command: WebhookAttemptDue, now: datetime, lease_seconds: float) -> None:
        """Why the claim missed, and what follows: done or stale (nothing), early (down the ladder again), or held
        by another dispatcher (look again when its lease has run out)."""
        current = await repo.get_delivery(self.db, command.delivery_id)
        if current is None or current["state"] != "pending":
            return
        if current["sequence"] != command.sequence:
            if current["sequence"] > command.sequence and current.get("schedule_pending"):
                await self._publish_schedule(current)  # the step after this one was never announced
            return
        remaining = (current["next_attempt_at"] - now).total_seconds()
        if remaining > EARLY_TOLERANCE.total_seconds():
            await self.broker.publish_delayed(command, topology.WEBHOOKS_ATTEMPTS, remaining)
            return
        raise Retry("delivery leased by another dispatcher", delay=lease_seconds)

    async def _attempt(self, delivery: dict[str, Any], subscription: dict[str, Any]) -> None:
        body = delivery["body"].encode()
        started_at = _now()
        try:
            secrets = self._secrets(subscription, started_at)
        except ValueError as exc:
            # The operator's key changed: a failed attempt, retried on schedule (the key may come back), so the
            # delivery never hangs under a lease.
            log.error("webhook secret cannot be decrypted", extra={"subscription_id": subscription["_id"]})
            result = sending.AttemptResult(None, 0, "", str(exc))
        else:
            result = await sending.attempt(
                self.client,
                subscription["url"],
                signed_headers(secrets, delivery["_id"], started_at, body),
                body,
                timeout=self.settings.attempt_timeout_seconds,
                allow_private=self.settings.allow_private_destinations,
            )
        await repo.record_attempt(self.db, delivery, result.as_record(), started_at)
        metrics.ATTEMPTS.labels(_attempt_outcome(result)).inc()
        if not (result.error or "").startswith("destination refused"):
            metrics.ATTEMPT_SECONDS.observe(result.latency_ms / 1000)
        log.info(
            "webhook attempt",
            extra={
                "delivery_id": delivery["_id"],
                "subscription_id": subscription["_id"],
                "status": result.status,
                "latency_ms": result.latency_ms,
                "outcome": "succeeded" if result.succeeded else "failed",
            },
        )
        now = _now()
        if result.succeeded:
            if await repo.finish_delivered(self.db, delivery, result.status or 200, now):
                metrics.DELIVERIES.labels("delivered").inc()
            if subscription.get("failing_since") is not None:
                await repo.record_success(self.db, subscription["_id"])
            return
        failed_in_run = delivery.get("attempts", 0) + 1 - delivery.get("replay_base", 0)
        delay = retry_delay(failed_in_run, self.delays)
        next_at = None if delay is None else now + timedelta(seconds=delay)
        after = await repo.finish_failed_attempt(
            self.db, delivery, status=result.status, error=result.reason, next_attempt_at=next_at
        )
        if after is not None and after["state"] == "failed":
            metrics.DELIVERIES.labels("failed").inc()
        await self._note_failure(subscription, result.reason, now)
        if after is not None and after["state"] == "pending":
            await self._publish_schedule(after)

    def _secrets(self, subscription: dict[str, Any], now: datetime) -> list[str]:
        """The current secret, and the one a rotation replaced while its grace period lasts."""
        secrets = [self.box.open(subscription["secret_sealed"])]
        previous, until = subscription.get("previous_secret_sealed"), subscription.get("previous_secret_until")
        if previous and until is not None and until > now:
            secrets.append(self.box.open(previous))
        return secrets

    async def _note_failure(self, subscription: dict[str, Any], reason: str, now: datetime) -> None:
        current = await repo.record_failure(self.db, subscription["_id"], now)
        if current is None or not current.get("enabled"):
            return
        limit = now - timedelta(seconds=self.settings.disable_after_seconds)
        disabled = await repo.disable_failing(self.db, subscription["_id"], limit, reason)
        if disabled is not None:
            metrics.SUBSCRIPTIONS_DISABLED.inc()
            log.warning(
                "webhook subscription disabled after failing for too long",
                extra={"subscription_id": disabled["_id"], "account_id": disabled["account_id"]},
            )
            await self._announce_disabled(disabled)

    async def _announce_disabled(self, subscription: dict[str, Any]) -> None:
        if subscription.get("disabled_announced", True):
            return
        await self.broker.publish(
            WebhookSubscriptionDisabled(
                account_id=subscription["account_id"],
                subscription_id=subscription["_id"],
                url=display_url(subscription["url"]),
                failing_since=subscription.get("failing_since") or _now(),
                reason=subscription.get("disabled_reason") or "failing",
            )
        )
        await repo.mark_disabled_announced(self.db, subscription["_id"])


def _attempt_outcome(result: sending.AttemptResult) -> str:
    if result.succeeded:
        return "succeeded"
    if result.status is not None:
        return "failed"
    return "refused" if (result.error or "").startswith("destination refused") else "error"
