"""Automation's own Prometheus metrics (the broker and HTTP ones are shared)."""

from prometheus_client import Counter

RULES_EVALUATED = Counter("mailstream_automation_rules_evaluated_total", "Rules evaluated on a message", ["outcome"])
AUTO_REPLIES_HELD_BACK = Counter(
    "mailstream_automation_auto_replies_held_back_total",
    "Auto-replies not requested, by reason (loop protection, rate limit)",
    ["reason"],
)
RULES_CACHE = Counter(
    "mailstream_automation_rules_cache_total",
    "Rule look-ups per message: served from this replica's cache (hit) or loaded from the database (miss)",
    ["result"],
)
