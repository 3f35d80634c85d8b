"""Request and response bodies of the domains API."""

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..name_validation import DomainNameError, validate_sending_domain


class DomainCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"name": "acme.com", "dkim_key_bits": 2048}, {"name": "mails.acme.com"}]},
    )

    name: str = Field(
        description="A domain or subdomain the account owns (not a free-mail domain): dot-separated labels of letters,"
        " digits and hyphens (IDNs in their xn-- form), at most 253 characters",
        min_length=1,
        max_length=253,
    )
    dkim_key_bits: Literal[1024, 2048] = Field(default=2048, description="RSA key length; 2048 is recommended")

    @field_validator("name")
    @classmethod
    def _sending_domain(cls, value: str) -> str:
        try:
            return validate_sending_domain(value)
        except DomainNameError as exc:
            raise ValueError(str(exc)) from None


class DnsRecordPublic(BaseModel):
    purpose: Literal["dkim", "spf", "dmarc"]
    type: str = Field(description="DNS record type")
    host: str = Field(description="Fully qualified name to publish the record at")
    value: str = Field(description="The value as DNS provider web forms take it (one piece)")
    zone_value: str = Field(description="The value as a zone file writes it: quoted strings of at most 255 bytes")
    status: Literal["pending", "verified", "invalid"]
    detail: str = Field(description="What the last check found and what to do about it")
    problem: str | None = Field(
        default=None,
        description="Machine-readable diagnostic: missing, timeout, servfail, wrong_value, truncated, badly_split, "
        "key_mismatch, revoked, several_records, missing_include, plus_all, lookup_limit",
    )
    checked_at: datetime | None = None
    selector: str | None = Field(default=None, description="DKIM selector")
    algorithm: str | None = Field(default=None, description="DKIM key type: rsa or ed25519")
    key_state: Literal["pending", "active", "retiring"] | None = Field(
        default=None, description="DKIM rotation role: pending (new, not signing yet), active (signs), retiring"
    )
    required: bool = Field(description="Whether the domain's status depends on this record")
    notes: list[str] = Field(default_factory=list)


class DomainPublic(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "3f0c8e4a9b7d4c2e8f1a6b5d4c3e2f10",
                    "name": "acme.com",
                    "status": "pending",
                    "dkim_key_bits": 2048,
                    "signing_selector": None,
                    "created_at": "2026-11-27T10:00:00Z",
                    "checked_at": None,
                    "next_check_at": "2026-11-27T10:05:00Z",
                    "dns_records": [
                        {
                            "purpose": "dkim",
                            "type": "TXT",
                            "host": "ms2026111._domainkey.acme.com",
                            "value": "v=DKIM1; k=rsa; p=MIIBIjANBgkqh...",
                            "zone_value": '"v=DKIM1; k=rsa; p=MIIBIjANBgkqh..." "...IDAQAB"',
                            "status": "pending",
                            "detail": "ms2026111._domainkey.acme.com does not exist (NXDOMAIN): publish ...",
                            "problem": "missing",
                            "selector": "ms2026111",
                            "algorithm": "rsa",
                            "key_state": "pending",
                            "required": True,
                            "notes": ["publish this record; signing starts once it verifies"],
                        },
                        {
                            "purpose": "spf",
                            "type": "TXT",
                            "host": "acme.com",
                            "value": "v=spf1 include:_spf.mailstream.test ~all",
                            "zone_value": '"v=spf1 include:_spf.mailstream.test ~all"',
                            "status": "pending",
                            "detail": "not checked yet: publish the record, then verify",
                            "required": True,
                        },
                    ],
                }
            ]
        }
    )

    id: str
    name: str
    status: Literal["pending", "verified", "invalid"]
    dkim_key_bits: int
    signing_selector: str | None = Field(description="Selector outgoing mail is signed with; null: not signing")
    created_at: datetime
    checked_at: datetime | None = None
    next_check_at: datetime | None = Field(default=None, description="When the automatic re-check runs")
    dns_records: list[DnsRecordPublic]


class Ed25519Key(BaseModel):
    selector: str
    private_key_pem: str = Field(description="PKCS#8 PEM")
    private_key_b64: str = Field(
        description="The raw 32-byte key in base64, as dkimpy's ed25519-sha256 signer takes it"
    )


class SigningKey(BaseModel):
    domain: str
    selector: str
    algorithm: Literal["rsa-sha256"]
    private_key_pem: str
    ed25519: Ed25519Key | None
