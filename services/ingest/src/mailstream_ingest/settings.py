"""Ingest configuration, from environment variables (defaults are the dev defaults of the public contract)."""

from typing import Literal

from pydantic import Field, SecretStr

from mailstream_common.settings import DEV_VERP_SECRET, CommonSettings, service_database


class IngestSettings(CommonSettings):
    mongodb_database: str = service_database("ingest")
    role: Literal["all", "smtp", "analyse"] = Field(
        default="all",
        alias="INGEST_ROLE",
        description="Run the SMTP front door, the analysis of received mail, or both",
    )
    ops_port: int = Field(default=8101, alias="INGEST_OPS_PORT")
    verp_secret: SecretStr = Field(
        default=SecretStr(DEV_VERP_SECRET),
        alias="MAILSTREAM_VERP_SECRET",
        description="HMAC key of the VERP bounce addresses (the sender signs them, ingest checks them); its own secret",
    )

    # --- SMTP front door ---
    smtp_host: str = Field(default="127.0.0.1", alias="INGEST_SMTP_HOST")
    smtp_port: int = Field(default=2525, alias="INGEST_SMTP_PORT")
    smtp_hostname: str | None = Field(
        default=None, alias="INGEST_SMTP_HOSTNAME", description="Name in the greeting; the inbound domain if unset"
    )
    smtp_reuse_port: bool = Field(
        default=False, alias="INGEST_SMTP_REUSE_PORT", description="SO_REUSEPORT: several processes share the port"
    )
    event_loop: Literal["uvloop", "asyncio"] = Field(
        default="uvloop",
        alias="INGEST_EVENT_LOOP",
        description="uvloop spends less CPU per SMTP session than asyncio's loop (docs/benchmarks/ingest.md)",
    )
    max_message_bytes: int = Field(default=25 * 1024 * 1024, alias="INGEST_MAX_MESSAGE_BYTES", ge=1024)
    max_recipients: int = Field(default=100, alias="INGEST_MAX_RECIPIENTS", ge=1)
    max_line_length: int = Field(
        default=8192,
        alias="INGEST_MAX_LINE_LENGTH",
        ge=1001,
        description="Longest accepted line incl. CRLF; RFC 5321 says 1000, real mailers exceed it",
    )
    max_sessions: int = Field(default=200, alias="INGEST_MAX_SESSIONS", ge=1)
    smtp_timeout_seconds: float = Field(
        default=300.0, alias="INGEST_SMTP_TIMEOUT_SECONDS", gt=0, description="Idle limit while waiting for a command"
    )
    smtp_data_timeout_seconds: float = Field(
        default=600.0, alias="INGEST_SMTP_DATA_TIMEOUT_SECONDS", gt=0, description="Limit for one whole DATA transfer"
    )
    confirm_timeout_seconds: float = Field(
        default=10.0, alias="INGEST_CONFIRM_TIMEOUT_SECONDS", gt=0, description="Broker confirm wait before 451"
    )
    backlog_limit: int = Field(
        default=100_000,
        alias="INGEST_BACKLOG_LIMIT",
        ge=0,
        description="Refuse new mail (451 at MAIL FROM) while more than this many mails wait to be analysed and "
        "stored; accept again below 80% of it. 0 turns the check off",
    )
    backlog_check_seconds: float = Field(
        default=1.0, alias="INGEST_BACKLOG_CHECK_SECONDS", gt=0, description="How often the queue depths are read"
    )
    proxy_protocol: bool = Field(
        default=False,
        alias="INGEST_PROXY_PROTOCOL",
        description="Expect a PROXY protocol (v1/v2) header from a TCP load balancer; SPF then sees the real client",
    )
    tls_cert_file: str | None = Field(default=None, alias="INGEST_TLS_CERT_FILE")
    tls_key_file: str | None = Field(default=None, alias="INGEST_TLS_KEY_FILE")
    bounce_domain: str | None = Field(
        default=None, alias="MAILSTREAM_BOUNCE_DOMAIN", description="Domain of VERP bounce addresses"
    )
    negative_cache_seconds: float = Field(default=5.0, alias="INGEST_NEGATIVE_CACHE_SECONDS", ge=0)
    positive_cache_seconds: float = Field(default=300.0, alias="INGEST_POSITIVE_CACHE_SECONDS", ge=0)

    # --- analysis ---
    dns_nameservers: str = Field(default="", alias="DNS_NAMESERVERS", description="Comma list of ip[:port]")
    dns_timeout_seconds: float = Field(default=2.0, alias="INGEST_DNS_TIMEOUT_SECONDS", gt=0)
    auth_time_box_seconds: float = Field(
        default=6.0, alias="INGEST_AUTH_TIME_BOX_SECONDS", gt=0, description="SPF+DKIM+DMARC of one mail, at most"
    )
    auth_enabled: bool = Field(default=True, alias="INGEST_AUTH_ENABLED")

    @property
    def effective_bounce_domain(self) -> str:
        return (self.bounce_domain or self.inbound_domain).lower()

    @property
    def effective_hostname(self) -> str:
        return self.smtp_hostname or self.inbound_domain
