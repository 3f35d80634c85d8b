"""Settings every service reads from the environment.

Each service subclasses `CommonSettings` with its own fields and its own ops port; the defaults are the documented
development ones (README, docs/architecture.md) so that a bare `python -m mailstream_<service>` works on a dev machine.
"""

import hashlib
from typing import Any

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

# Development credentials only (the defaults of a bare `python -m`); scripts/run.sh and deployments set real ones.
DEV_GATEWAY_TOKEN = "dev-gateway-token-change-me"  # noqa: S105 - documented dev default
DEV_SENDER_TOKEN = "dev-sender-token-change-me"  # noqa: S105 - documented dev default
DEV_VERP_SECRET = "dev-verp-secret-change-me"  # noqa: S105 - documented dev default


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore", populate_by_name=True)

    amqp_url: SecretStr = Field(
        default=SecretStr("amqp://guest:guest@127.0.0.1:5672/"),
        alias="AMQP_URL",
        description="RabbitMQ URL; secret because it carries the password",
    )
    mongodb_uri: SecretStr = Field(
        default=SecretStr("mongodb://127.0.0.1:27017/"),
        alias="MONGODB_URI",
        description="MongoDB URI; secret because it may carry credentials",
    )
    mongodb_database: str = Field(
        default="mailstream",
        alias="MONGODB_DATABASE",
        description="The database; a service's own `<SERVICE>_MONGODB_DATABASE` wins (see `service_database`)",
    )
    mongodb_write_concern_w: str = Field(
        default="majority",
        alias="MONGODB_WRITE_CONCERN_W",
        description="Write concern `w` of every write: 'majority' (a write a failover cannot roll back) or a count",
    )
    mongodb_write_concern_j: bool = Field(
        default=True,
        alias="MONGODB_WRITE_CONCERN_J",
        description="Write concern `j`: acknowledge a write only once it is in the journal (survives a crash)",
    )
    mongodb_max_idle_seconds: float = Field(
        default=120.0,
        alias="MONGODB_MAX_IDLE_SECONDS",
        gt=0,
        description="Close a pooled connection idle this long instead of reusing it: below any idle cut-off between "
        "the service and the database (cloud load balancers from 240 s, SecantusDB 300 s), so no request meets a "
        "connection the other side already closed",
    )
    inbound_domain: str = Field(default="in.mailstream.test", alias="MAILSTREAM_INBOUND_DOMAIN")
    # Service-to-service auth (mailstream_common.service_auth): receivers hold only the SHA-256 of each caller's
    # own token. The defaults are the digests of the dev tokens below, so a bare dev run works; deployments set both.
    gateway_token_sha256: str = Field(
        default=hashlib.sha256(DEV_GATEWAY_TOKEN.encode()).hexdigest(),
        alias="MAILSTREAM_GATEWAY_TOKEN_SHA256",
        description="SHA-256 (hex) of the gateway's token: domains, automation and sender accept the gateway",
    )
    sender_token_sha256: str = Field(
        default=hashlib.sha256(DEV_SENDER_TOKEN.encode()).hexdigest(),
        alias="MAILSTREAM_SENDER_TOKEN_SHA256",
        description="SHA-256 (hex) of the sender's token: domains accepts the sender on its signing-key route",
    )
    log_level: str = Field(default="INFO", alias="LOG_LEVEL")
    ops_host: str = Field(default="127.0.0.1", alias="OPS_HOST", description="Where /healthz, /readyz, /metrics listen")
    shutdown_grace_seconds: float = Field(default=20.0, alias="SHUTDOWN_GRACE_SECONDS")
    consumer_prefetch: int = Field(default=32, alias="CONSUMER_PREFETCH", ge=1, le=10_000)

    @property
    def service_callers(self) -> dict[str, str]:
        """Caller name -> SHA-256 of its token, for `app.state.service_callers`."""
        return {"gateway": self.gateway_token_sha256, "sender": self.sender_token_sha256}


def service_database(service: str) -> Any:
    """The `mongodb_database` field of one service: `<SERVICE>_MONGODB_DATABASE`, else the shared
    `MONGODB_DATABASE`, else "mailstream". Each service owns its collections, so each may have a database of its
    own; one shared database works too (no two services use the same collection name)."""
    own = f"{service.upper()}_MONGODB_DATABASE"
    return Field(
        default="mailstream",
        validation_alias=AliasChoices(own, "MONGODB_DATABASE", "mongodb_database"),
        description=f"{own}, else MONGODB_DATABASE",
    )
