"""DKIM key pairs, their selectors, and the encryption of private keys at rest.

Private keys are PEM (PKCS#8) inside this module and the signing-key endpoint only; everywhere else (the database,
events, logs, the public API) they exist only as Fernet tokens or not at all.
"""

import base64
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime

from cryptography.fernet import InvalidToken
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from mailstream_common.sealing import fernet_from_settings

log = logging.getLogger(__name__)

ALLOWED_RSA_BITS = (1024, 2048)
DEFAULT_RSA_BITS = 2048
_DEV_SECRET = b"mailstream-dev-only-dkim-key-encryption"
_SELECTOR = re.compile(r"^ms(\d{6})(\d+)$")


@dataclass(frozen=True, repr=False)
class KeyPair:
    """A fresh key pair; `private_pem` must go through `KeyVault.encrypt` before it is stored."""

    algorithm: str  # rsa | ed25519
    bits: int | None
    public_key_b64: str  # the DKIM p= value
    private_pem: bytes = field(repr=False)

    def __repr__(self) -> str:  # never print the private key, even in a traceback or debugger
        return f"KeyPair({self.algorithm}, bits={self.bits})"


def generate_rsa(bits: int = DEFAULT_RSA_BITS) -> KeyPair:
    if bits not in ALLOWED_RSA_BITS:
        raise ValueError(f"DKIM RSA keys are {ALLOWED_RSA_BITS}, not {bits} bits")
    private = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    public_der = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )  # PKCS#1 "RSA PRIVATE KEY": what dkimpy, OpenDKIM and Mail::DKIM all read
    return KeyPair("rsa", bits, base64.b64encode(public_der).decode("ascii"), pem)


def generate_ed25519() -> KeyPair:
    private = ed25519.Ed25519PrivateKey.generate()
    raw_public = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return KeyPair("ed25519", None, base64.b64encode(raw_public).decode("ascii"), pem)  # RFC 8463: raw key in p=


def ed25519_seed_b64(private_pem: bytes) -> str:
    """The raw 32-byte private key, base64: what dkimpy expects as `privkey` for ed25519-sha256."""
    private = serialization.load_pem_private_key(private_pem, password=None)
    raw = private.private_bytes(  # type: ignore[union-attr]
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return base64.b64encode(raw).decode("ascii")


def next_selector(now: datetime, existing: list[str]) -> str:
    """`ms<yyyymm><n>`: unique per domain, ordered in time, so a rotation never reuses a published name."""
    month = now.strftime("%Y%m")
    used = [int(m.group(2)) for s in existing if (m := _SELECTOR.match(s)) and m.group(1) == month]
    return f"ms{month}{max(used, default=0) + 1}"


class KeyVault:
    """Encrypts private keys at rest with a Fernet key (AES-128-CBC + HMAC-SHA256) from the environment."""

    def __init__(self, key: str | None = None, key_file: str | None = None) -> None:
        self._fernet, self.is_dev_default = fernet_from_settings(
            key, key_file, setting="DOMAINS_KEY_ENCRYPTION_KEY", protects="DKIM private keys", dev_seed=_DEV_SECRET
        )

    def encrypt(self, private_pem: bytes) -> str:
        return self._fernet.encrypt(private_pem).decode("ascii")

    def decrypt(self, token: str) -> bytes:
        try:
            return self._fernet.decrypt(token.encode("ascii"))
        except InvalidToken:
            raise ValueError("a DKIM private key cannot be decrypted: DOMAINS_KEY_ENCRYPTION_KEY changed?") from None
