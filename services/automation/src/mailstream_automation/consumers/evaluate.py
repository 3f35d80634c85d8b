"""`automation.evaluate`: run an account's rules on every stored inbound message and ask inbox to act.

Idempotent under redelivery: each (rule, message) has one run (its `_id` derives from that key); a run's actions are
published only while the run is not marked `published`, which happens after the broker's confirm. A crash between
the two re-publishes on redelivery, and inbox de-duplicates per (rule, trigger message).

Database round trips per message: the rules revision (and the rules on a cache miss), the message's earlier runs
(one indexed query), then one insert per evaluated rule, and for a fired auto-reply one conditional upsert.
"""

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import TypeAdapter

from mailstream_common.broker import Broker, Delivery
from mailstream_common.contracts import ConversationActionsRequested, MessageStored, RuleAction

from ..evaluation import evaluate_rules
from ..facts import facts_from_message
from ..loop_protection import automatic_mail_reason, split_auto_reply
from ..metrics import AUTO_REPLIES_HELD_BACK, RULES_EVALUATED
from ..repositories import AutoRepliesRepository, CachedRules, RulesRepository, RunsRepository
from ..rules_cache import RulesCache
from ..runs import build_run, needs_publishing
from ..settings import AutomationSettings

log = logging.getLogger(__name__)

_ACTIONS = TypeAdapter(list[RuleAction])


class EvaluateConsumer:
    def __init__(
        self,
        rules: RulesRepository,
        runs: RunsRepository,
        auto_replies: AutoRepliesRepository,
        broker: Broker,
        settings: AutomationSettings,
    ) -> None:
        self.rules = rules
        self.cached_rules = CachedRules(rules, RulesCache(settings.rules_cache_accounts))
        self.runs = runs
        self.auto_replies = auto_replies
        self.broker = broker
        self.settings = settings

    async def handle(self, event: MessageStored, delivery: Delivery) -> None:
        if event.direction != "inbound":
            return  # our own replies and agents' mail never trigger rules
        if event.imported:
            return  # history brought in by an import is quiet: no rule runs, no auto-reply
        # Finish what an earlier delivery (or a duplicate of this event) recorded but could not publish: also runs of
        # rules that this evaluation no longer reaches (deleted, disabled, reordered since).
        earlier = await self.runs.decisions_for_message(event.account_id, event.message_id)
        for run in earlier.values():
            if needs_publishing(run):
                await self._publish(run)
        rules = await self.cached_rules.enabled_for_account(event.account_id)
        if not rules:
            return
        facts = facts_from_message(event)
        automatic = automatic_mail_reason(facts)
        outcomes = evaluate_rules(
            rules,
            facts,
            topic_id=event.topic_id,
            stream_id=event.stream_id,
            regex_timeout=self.settings.regex_timeout_seconds,
        )
        for rule, outcome in outcomes:
            RULES_EVALUATED.labels("fired" if outcome.fired else "not_fired").inc()
            if not outcome.fired and not self.settings.record_unfired_runs:
                continue
            if rule.id in earlier:  # decided on an earlier delivery or by a duplicate of this event (published above)
                continue
            now = datetime.now(UTC)
            actions, skipped = list(rule.actions), []
            if outcome.fired and rule.has_auto_reply():
                reason = automatic or await self._rate_limit_reason(rule.id, facts.from_address, event.message_id, now)
                actions, skipped = split_auto_reply(rule.actions, reason)
                for item in skipped:
                    AUTO_REPLIES_HELD_BACK.labels(item["reason"].split(":", 1)[0]).inc()
            run = build_run(
                event=event,
                rule=rule,
                outcome=outcome,
                actions=actions,
                skipped_actions=skipped,
                customer=facts.from_address,
                at=now,
                retention=timedelta(days=self.settings.runs_retention_days),
            )
            stored, created = await self.runs.insert_once(run)
            if created and outcome.fired:
                await self.rules.record_fired(rule.id, now)
            if needs_publishing(stored):
                await self._publish(stored)
            log.info(
                "rule evaluated",
                extra={"rule_id": rule.id, "message_id": event.message_id, "fired": outcome.fired, "skipped": skipped},
            )

    async def _rate_limit_reason(self, rule_id: str, customer: str, message_id: str, now: datetime) -> str | None:
        hours = self.settings.auto_reply_interval_hours
        if hours <= 0:
            return None
        interval = timedelta(hours=hours)
        # Kept past the interval as long as the runs are, so that lengthening the interval does not forget a reply.
        keep_until = now + max(interval, timedelta(days=self.settings.runs_retention_days))
        allowed, last_at = await self.auto_replies.take(
            rule_id, customer, message_id, now, interval, keep_until=keep_until
        )
        if allowed:
            return None
        when = last_at.isoformat() if last_at else "recently"
        return f"rate_limited: this rule auto-replied to {customer} at {when} (at most one per {hours:g} h)"

    async def _publish(self, run: dict[str, Any]) -> None:
        command = ConversationActionsRequested(
            account_id=run["account_id"],
            conversation_id=run["conversation_id"],
            trigger_message_id=run["message_id"],
            rule_id=run["rule_id"],
            rule_name=run.get("rule_name", ""),
            actions=_ACTIONS.validate_python(run["actions"]),
            correlation_id=run.get("correlation_id"),
        )
        await self.broker.publish(command)
        await self.runs.mark_published(run["_id"], datetime.now(UTC))
