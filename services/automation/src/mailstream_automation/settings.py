"""Automation's settings: where its HTTP API listens, how cautious auto-replies are, what is cached and kept."""

from pydantic import Field

from mailstream_common.settings import CommonSettings, service_database


class AutomationSettings(CommonSettings):
    mongodb_database: str = service_database("automation")
    http_host: str = Field(default="127.0.0.1", alias="AUTOMATION_HTTP_HOST")
    http_port: int = Field(default=8103, alias="AUTOMATION_HTTP_PORT", ge=0, le=65535)
    auto_reply_interval_hours: float = Field(
        default=24.0,
        alias="AUTOMATION_AUTO_REPLY_INTERVAL_HOURS",
        ge=0,
        description="At most one auto-reply per rule and customer address in this many hours (0: no limit)",
    )
    regex_timeout_seconds: float = Field(
        default=0.05,
        alias="AUTOMATION_REGEX_TIMEOUT_SECONDS",
        gt=0,
        le=5,
        description="Wall-clock budget of one `matches` condition on one message; past it the condition is false",
    )
    record_unfired_runs: bool = Field(
        default=True,
        alias="AUTOMATION_RECORD_UNFIRED_RUNS",
        description="Also record runs of rules that were evaluated but did not fire (answers 'why not?')",
    )
    reference_settle_seconds: float = Field(
        default=2.0,
        alias="AUTOMATION_REFERENCE_SETTLE_SECONDS",
        ge=0,
        le=30,
        description="How long a rule save waits for an unknown topic/stream/canned response id to appear in the"
        " projection (its *.changed event normally arrives within milliseconds of inbox's write) before 422",
    )
    max_rules_per_account: int = Field(default=500, alias="AUTOMATION_MAX_RULES_PER_ACCOUNT", ge=1)
    rules_cache_accounts: int = Field(
        default=10_000,
        alias="AUTOMATION_RULES_CACHE_ACCOUNTS",
        ge=0,
        description="Accounts whose enabled rules each replica keeps in memory (least recently used out; 0: none)",
    )
    runs_retention_days: float = Field(
        default=30.0,
        alias="AUTOMATION_RUNS_RETENTION_DAYS",
        ge=1,  # far longer than a message can be redelivered (the retry tiers end within the hour)
        description="Runs (and auto-reply records no longer needed) expire this many days after they are written",
    )
