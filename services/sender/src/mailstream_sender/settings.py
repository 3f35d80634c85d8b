"""Sender configuration from the environment (defaults are those of the public contract)."""

from typing import Literal

from pydantic import Field, SecretStr, model_validator

from mailstream_common.settings import DEV_SENDER_TOKEN, DEV_VERP_SECRET, CommonSettings, service_database

from .retention import minimum_retention_hours


class SenderSettings(CommonSettings):
    mongodb_database: str = service_database("sender")
    http_host: str = Field(default="127.0.0.1", alias="SENDER_HTTP_HOST")
    http_port: int = Field(default=8104, alias="SENDER_HTTP_PORT", description="Suppression API + /healthz etc.")
    sender_token: SecretStr = Field(
        default=SecretStr(DEV_SENDER_TOKEN),
        alias="MAILSTREAM_SENDER_TOKEN",
        description="The sender's own credential on its calls to domains (the signing-key route accepts only it)",
    )
    verp_secret: SecretStr = Field(
        default=SecretStr(DEV_VERP_SECRET),
        alias="MAILSTREAM_VERP_SECRET",
        description="HMAC key of the VERP bounce addresses (the sender signs them, ingest checks them); its own secret",
    )

    smtp_host: str = Field(default="127.0.0.1", alias="SENDER_SMTP_HOST", description="The smarthost")
    smtp_port: int = Field(default=2526, alias="SENDER_SMTP_PORT")
    smtp_tls: Literal["none", "starttls", "implicit"] = Field(default="none", alias="SENDER_SMTP_TLS")
    smtp_tls_verify: bool = Field(default=True, alias="SENDER_SMTP_TLS_VERIFY")
    smtp_username: str | None = Field(default=None, alias="SENDER_SMTP_USERNAME")
    smtp_password: SecretStr | None = Field(default=None, alias="SENDER_SMTP_PASSWORD")
    smtp_timeout_seconds: float = Field(default=30.0, alias="SENDER_SMTP_TIMEOUT_SECONDS")
    smtp_pool_size: int = Field(
        default=8, alias="SENDER_SMTP_POOL_SIZE", ge=1, description="Open relay connections kept per process"
    )
    per_destination_concurrency: int = Field(
        default=8, alias="SENDER_PER_DESTINATION_CONCURRENCY", ge=1, description="Sends in flight per recipient domain"
    )
    helo_name: str | None = Field(default=None, alias="SENDER_HELO_NAME")

    max_age_seconds: float = Field(
        default=2 * 24 * 3600, alias="SENDER_MAX_AGE_SECONDS", description="Temporary failures give up after this"
    )
    retry_base_seconds: float = Field(default=5.0, alias="SENDER_RETRY_BASE_SECONDS")
    bounce_domain: str | None = Field(
        default=None, alias="MAILSTREAM_BOUNCE_DOMAIN", description="VERP domain; default: the inbound domain"
    )
    domains_url: str = Field(default="http://127.0.0.1:8102", alias="DOMAINS_URL")
    signing_key_cache_seconds: float = Field(
        default=300.0, alias="SENDER_SIGNING_KEY_CACHE_SECONDS", description="Also invalidated by domain.changed"
    )
    suppress_after_hard_bounces: int = Field(default=2, alias="SENDER_SUPPRESS_AFTER_HARD_BOUNCES", ge=1)
    stream_cache_seconds: float = Field(
        default=60.0, alias="SENDER_STREAM_CACHE_SECONDS", ge=0, description="Also invalidated by stream.changed"
    )
    suppression_cache_seconds: float = Field(
        default=5.0,
        alias="SENDER_SUPPRESSION_CACHE_SECONDS",
        ge=0,
        description="How late another replica's suppression change may apply here",
    )
    deliveries_retention_hours: float = Field(
        default=72,
        alias="SENDER_DELIVERIES_RETENTION_HOURS",
        gt=0,
        description="Final delivery records (and their mails) expire this long after; older commands are refused",
    )

    @model_validator(mode="after")
    def _retention_outlives_retries(self) -> "SenderSettings":
        minimum = minimum_retention_hours(self.max_age_seconds)
        if self.deliveries_retention_hours < minimum:
            raise ValueError(
                f"SENDER_DELIVERIES_RETENTION_HOURS must be at least {minimum:g} "
                "(SENDER_MAX_AGE_SECONDS plus the longest retry delay, an hour)"
            )
        return self

    @property
    def effective_bounce_domain(self) -> str:
        return self.bounce_domain or self.inbound_domain
