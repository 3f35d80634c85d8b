"""The inbox gateway's configuration, from the environment."""

from typing import Literal

from pydantic import Field, SecretStr

from mailstream_common import topology
from mailstream_common.settings import DEV_GATEWAY_TOKEN, CommonSettings, service_database

from .conversation_threading import DEFAULT_SUBJECT_WINDOW


def default_dead_letter_queues() -> list[str]:
    """Every durable work queue of the system (each has a `<queue>.dead`)."""
    return [spec.name for spec in topology.WORK_QUEUES if not spec.replica_local]


class InboxSettings(CommonSettings):
    mongodb_database: str = service_database("inbox")
    http_host: str = Field(default="127.0.0.1", alias="INBOX_HTTP_HOST")
    http_port: int = Field(default=8000, alias="INBOX_HTTP_PORT", ge=0, le=65535)
    role: Literal["all", "api", "worker"] = Field(
        default="all",
        alias="INBOX_ROLE",
        description="'api' serves HTTP only, 'worker' runs the consumers only (plus ops routes), 'all' does both",
    )
    domains_url: str = Field(default="http://127.0.0.1:8102", alias="DOMAINS_URL")
    automation_url: str = Field(default="http://127.0.0.1:8103", alias="AUTOMATION_URL")
    sender_url: str = Field(default="http://127.0.0.1:8104", alias="SENDER_URL")
    gateway_token: SecretStr = Field(
        default=SecretStr(DEV_GATEWAY_TOKEN),
        alias="MAILSTREAM_GATEWAY_TOKEN",
        description="The gateway's own credential on the calls it forwards (opens public routes only); SSE tickets"
        " are signed with a key derived from it",
    )
    bounce_domain: str | None = Field(
        default=None, alias="MAILSTREAM_BOUNCE_DOMAIN", description="Defaults to the inbound domain"
    )
    proxy_timeout_seconds: float = Field(default=30.0, alias="INBOX_PROXY_TIMEOUT_SECONDS", gt=0)
    sse_keepalive_seconds: float = Field(default=15.0, alias="INBOX_SSE_KEEPALIVE_SECONDS", gt=0)
    sse_client_queue_size: int = Field(
        default=1000, alias="INBOX_SSE_CLIENT_QUEUE_SIZE", ge=1, description="Events buffered per slow SSE client"
    )
    sse_max_clients_per_account: int = Field(
        default=200, alias="INBOX_SSE_MAX_CLIENTS_PER_ACCOUNT", ge=1, description="Open event streams per replica"
    )
    events_retention_seconds: float = Field(
        default=3600.0,
        alias="INBOX_EVENTS_RETENTION_SECONDS",
        ge=10,
        description="How long live events stay in the journal that reconnecting SSE clients are replayed from",
    )
    events_replay_max: int = Field(
        default=1000,
        alias="INBOX_EVENTS_REPLAY_MAX",
        ge=1,
        le=10_000,
        description="Most events replayed on one reconnect; a client that missed more is told to resync",
    )
    events_memory_max: int = Field(
        default=20_000,
        alias="INBOX_EVENTS_MEMORY_MAX",
        ge=0,
        description="Recent live events each replica keeps in memory to replay without a query (0: always query)",
    )
    max_request_bytes: int = Field(
        default=10 * 1024 * 1024, alias="INBOX_MAX_REQUEST_BYTES", ge=1024, description="Larger request bodies get 413"
    )
    api_key_cache_seconds: float = Field(
        default=10.0,
        alias="INBOX_API_KEY_CACHE_SECONDS",
        ge=0,
        description="How long a replica trusts a verified key before looking it up again (revocations are broadcast;"
        " this bounds the delay when a broadcast is lost or a key is revoked with the CLI)",
    )

    attachment_max_bytes: int = Field(
        default=8 * 1024 * 1024,
        alias="INBOX_ATTACHMENT_MAX_BYTES",
        ge=1,
        description="Largest attachment an account may upload or receive, unless the account has its own limit"
        " (`mailstream accounts set-attachment-limit`); a larger inbound one is listed as omitted, kept in the raw."
        " Uploads are also bounded by INBOX_MAX_REQUEST_BYTES",
    )

    threading_window_days: float = Field(
        default=DEFAULT_SUBJECT_WINDOW.days,
        alias="INBOX_THREADING_WINDOW_DAYS",
        gt=0,
        description="How recent a conversation must be for a mail without references to join it by subject alone",
    )
    reply_relay_seconds: float = Field(
        default=60.0,
        alias="INBOX_REPLY_RELAY_SECONDS",
        gt=0,
        description="How often a worker publishes replies stored this long ago whose request died before publishing",
    )
    catalogue_relay_seconds: float = Field(
        default=10.0,
        alias="INBOX_CATALOGUE_RELAY_SECONDS",
        gt=0,
        description="How often a worker republishes stream/topic/canned-response changes the broker did not confirm"
        " (and how old such a change must be)",
    )
    dead_letter_queues: list[str] = Field(
        default_factory=default_dead_letter_queues,
        alias="INBOX_DEAD_LETTER_QUEUES",
        description="Queues whose `<queue>.dead` the dead-letter keeper of each worker empties into `dead_letters`"
        " (JSON list; default: every durable work queue of the system)",
    )
    dead_letter_gauge_seconds: float = Field(
        default=15.0,
        alias="INBOX_DEAD_LETTER_GAUGE_SECONDS",
        gt=0,
        description="How often a worker recounts the dead letters per queue for `mailstream_dead_letters`",
    )

    console_dir: str | None = Field(
        default=None,
        alias="INBOX_CONSOLE_DIR",
        description="The built reference console served at /console (default: console/dist of this checkout)",
    )

    # Webhook subscriptions (`/v1/webhooks`): the same key and rule as the dispatcher's (webhooks/settings.py).
    webhooks_secret_encryption_key: SecretStr | None = Field(
        default=None,
        alias="WEBHOOKS_SECRET_ENCRYPTION_KEY",
        description="Fernet key that encrypts webhook signing secrets at rest (the dispatcher needs the same one)",
    )
    webhooks_secret_encryption_key_file: str | None = Field(
        default=None, alias="WEBHOOKS_SECRET_ENCRYPTION_KEY_FILE", description="A mounted file holding that key"
    )
    webhooks_allow_private_destinations: bool = Field(
        default=False,
        alias="WEBHOOKS_ALLOW_PRIVATE_DESTINATIONS",
        description="Accept webhook URLs on loopback, private and link-local addresses",
    )

    data_request_relay_seconds: float = Field(
        default=10.0,
        alias="INBOX_DATA_REQUEST_RELAY_SECONDS",
        gt=0,
        description="How often a worker publishes data requests the broker did not confirm (and how old they must be)",
    )
    export_ttl_hours: float = Field(
        default=24.0,
        alias="INBOX_EXPORT_TTL_HOURS",
        gt=0,
        description="How long a data export's archive waits for its one download before it is deleted",
    )
    retention_run_seconds: float = Field(
        default=3600.0,
        alias="INBOX_RETENTION_RUN_SECONDS",
        gt=0,
        description="How often a worker looks for conversations older than their account's retention window",
    )

    @property
    def effective_bounce_domain(self) -> str:
        return self.bounce_domain or self.inbound_domain

    @property
    def serves_http(self) -> bool:
        return self.role in ("all", "api")

    @property
    def runs_consumers(self) -> bool:
        return self.role in ("all", "worker")
