"""The webhook dispatcher's configuration (and the secret key the gateway's webhook routes share with it)."""

from pydantic import AliasChoices, Field, SecretStr

from mailstream_common.settings import CommonSettings, service_database

from .schedule import DEFAULT_DELAYS, parse_delays


class WebhookSettings(CommonSettings):
    # The webhook collections live beside inbox's (inbox owns accounts and serves the routes).
    mongodb_database: str = service_database("inbox")
    ops_port: int = Field(
        default=8105,
        validation_alias=AliasChoices("WEBHOOKS_OPS_PORT", "INBOX_HTTP_PORT", "ops_port"),
        ge=0,
        le=65535,
        description="/healthz, /readyz, /metrics; else INBOX_HTTP_PORT (the chart's inbox pods: the port its probes"
        " use), else 8105. On one host beside the gateway (scripts/run.sh) set it",
    )
    secret_encryption_key: SecretStr | None = Field(
        default=None,
        alias="WEBHOOKS_SECRET_ENCRYPTION_KEY",
        description="Fernet key (urlsafe base64 of 32 bytes) that encrypts subscription signing secrets at rest",
    )
    secret_encryption_key_file: str | None = Field(
        default=None,
        alias="WEBHOOKS_SECRET_ENCRYPTION_KEY_FILE",
        description="A mounted secret file holding the Fernet key (used when WEBHOOKS_SECRET_ENCRYPTION_KEY is unset)",
    )
    attempt_timeout_seconds: float = Field(
        default=15.0, alias="WEBHOOKS_ATTEMPT_TIMEOUT_SECONDS", gt=0, le=120, description="One HTTP attempt, in all"
    )
    retry_delays: str = Field(
        default=",".join(str(int(d)) for d in DEFAULT_DELAYS),
        alias="WEBHOOKS_RETRY_DELAYS",
        description="Seconds to wait after each failed attempt (jittered +/-20%); the last attempt follows the last",
    )
    disable_after_seconds: float = Field(
        default=5 * 24 * 3600.0,
        alias="WEBHOOKS_DISABLE_AFTER_SECONDS",
        gt=0,
        description="A subscription whose every attempt failed for this long is disabled and the account told",
    )
    allow_private_destinations: bool = Field(
        default=False,
        alias="WEBHOOKS_ALLOW_PRIVATE_DESTINATIONS",
        description="Allow URLs on loopback, private and link-local addresses (an on-premises receiver; tests)",
    )
    concurrency: int = Field(
        default=64, alias="WEBHOOKS_CONCURRENCY", ge=1, le=1000, description="HTTP attempts in flight per replica"
    )

    @property
    def delays(self) -> tuple[float, ...]:
        return parse_delays(self.retry_delays)
