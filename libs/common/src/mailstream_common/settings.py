"""Settings every service reads from the environment.

Each service subclasses `CommonSettings` with its own fields and its own ops port; the defaults are those of the
public contract (shared/api-contract.md) so that a bare `python -m mailstream_<service>` works on a dev machine.
"""

from typing import Any

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


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
        description="MongoDB (or FerretDB) URI; secret because it may carry credentials",
    )
    mongodb_database: str = Field(
        default="mailstream",
        alias="MONGODB_DATABASE",
        description="The database; a service's own `<SERVICE>_MONGODB_DATABASE` wins (see `service_database`)",
    )
    inbound_domain: str = Field(default="in.mailstream.test", alias="MAILSTREAM_INBOUND_DOMAIN")
    internal_token: SecretStr = Field(
        default=SecretStr("dev-internal-token-change-me"),
        alias="MAILSTREAM_INTERNAL_TOKEN",
        description="Shared secret for service-to-service HTTP calls (gateway -> domains/automation, sender -> domains)",
    )
    log_level: str = Field(default="INFO", alias="LOG_LEVEL")
    ops_host: str = Field(default="127.0.0.1", alias="OPS_HOST", description="Where /healthz, /readyz, /metrics listen")
    shutdown_grace_seconds: float = Field(default=20.0, alias="SHUTDOWN_GRACE_SECONDS")
    consumer_prefetch: int = Field(default=32, alias="CONSUMER_PREFETCH", ge=1, le=10_000)


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
