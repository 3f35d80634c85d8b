"""Environment of the domains service (defaults fit a dev machine)."""

from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import NoDecode

from mailstream_common.settings import CommonSettings, service_database


def _comma_list(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class DomainsSettings(CommonSettings):
    mongodb_database: str = service_database("domains")
    http_host: str = Field(default="127.0.0.1", alias="DOMAINS_HTTP_HOST")
    http_port: int = Field(default=8102, alias="DOMAINS_HTTP_PORT", description="Internal API and /healthz, /readyz")

    bounce_domain: str | None = Field(
        default=None,
        alias="MAILSTREAM_BOUNCE_DOMAIN",
        description="Domain of the VERP envelope sender (MAIL FROM); default: the inbound domain",
    )
    spf_include: str | None = Field(
        default="_spf.mailstream.test",
        alias="DOMAINS_SPF_INCLUDE",
        description="The SPF record of Mailstream's sending hosts that customer domains include; empty: none",
    )
    spf_ips: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        alias="DOMAINS_SPF_IPS",
        description="Comma list of sending IPs (or CIDRs) customer SPF records must name as ip4:/ip6:",
    )
    dmarc_rua: str | None = Field(
        default=None,
        alias="DOMAINS_DMARC_RUA",
        description="Report address suggested in the recommended DMARC record; default dmarc-reports@<inbound>",
    )

    dns_nameservers: Annotated[list[str], NoDecode] = Field(
        default_factory=list, alias="DNS_NAMESERVERS", description="Comma list of ip[:port]; empty: system resolver"
    )
    dns_timeout_seconds: float = Field(default=5.0, alias="DNS_TIMEOUT_SECONDS", gt=0, le=60)

    key_encryption_key: SecretStr | None = Field(
        default=None,
        alias="DOMAINS_KEY_ENCRYPTION_KEY",
        description="Fernet key (urlsafe base64 of 32 bytes) that encrypts DKIM private keys at rest",
    )
    key_encryption_key_file: str | None = Field(
        default=None,
        alias="DOMAINS_KEY_ENCRYPTION_KEY_FILE",
        description="A mounted secret file holding the Fernet key (used when DOMAINS_KEY_ENCRYPTION_KEY is unset)",
    )
    ed25519: bool = Field(
        default=False, alias="DOMAINS_ED25519", description="Also make an Ed25519 key (a second DKIM signature)"
    )
    rotation_grace_hours: float = Field(
        default=72.0,
        alias="DOMAINS_ROTATION_GRACE_HOURS",
        ge=0,
        description="How long the old DKIM record must stay published after signing switched to the new key",
    )

    recheck_min_seconds: float = Field(default=300.0, alias="DOMAINS_RECHECK_MIN_SECONDS", gt=0)
    recheck_max_seconds: float = Field(default=6 * 3600.0, alias="DOMAINS_RECHECK_MAX_SECONDS", gt=0)
    recheck_verified_seconds: float = Field(
        default=24 * 3600.0,
        alias="DOMAINS_RECHECK_VERIFIED_SECONDS",
        gt=0,
        description="Verified domains are re-checked this often, so sender stops signing when a record disappears",
    )
    verifier_poll_seconds: float = Field(default=30.0, alias="DOMAINS_VERIFIER_POLL_SECONDS", gt=0)

    @field_validator("spf_ips", "dns_nameservers", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        return _comma_list(value)

    @field_validator("spf_include", "dmarc_rua", "bounce_domain", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @property
    def effective_bounce_domain(self) -> str:
        return (self.bounce_domain or self.inbound_domain).lower()

    @property
    def effective_dmarc_rua(self) -> str:
        return self.dmarc_rua or f"dmarc-reports@{self.inbound_domain}"
