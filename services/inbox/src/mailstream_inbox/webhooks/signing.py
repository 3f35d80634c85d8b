"""Standard Webhooks signing (https://www.standardwebhooks.com) with the spec's reference library, and the
subscription secrets: made here, shown once, stored only encrypted.

A secret is `whsec_` + base64 of 32 random bytes, the format every Standard Webhooks verifier accepts. The
signature is `v1,` + base64(HMAC-SHA256(secret, "<webhook-id>.<webhook-timestamp>.<body>")); the reference
library computes it, so a receiver that uses any of the spec's libraries verifies us without a line of our code.
"""

import base64
import logging
import secrets
from datetime import UTC, datetime

from cryptography.fernet import InvalidToken
from standardwebhooks.webhooks import Webhook

from mailstream_common.sealing import fernet_from_settings

log = logging.getLogger(__name__)

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret
SECRET_BYTES = 32
_DEV_KEY_SEED = b"mailstream-dev-only-webhook-secret-encryption"


def new_secret() -> str:
    """A fresh signing secret, `whsec_<base64 of 32 random bytes>`."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def signed_headers(secrets: str | list[str], webhook_id: str, timestamp: datetime, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers for one attempt (`timestamp` is the attempt's, not the event's). With
    several secrets (a rotation's grace period) the signature header holds one signature per secret,
    space-separated, and a receiver holding either secret verifies it."""
    if timestamp.tzinfo is None:
        timestamp = timestamp.replace(tzinfo=UTC)
    if isinstance(secrets, str):
        secrets = [secrets]
    signatures = [Webhook(secret).sign(msg_id=webhook_id, timestamp=timestamp, data=body) for secret in secrets]
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": " ".join(signatures),
    }


class SecretBox:
    """Encrypts signing secrets at rest with a Fernet key (AES-128-CBC + HMAC-SHA256) from the environment.

    The dispatcher must read the secret back to sign, so it cannot be stored as a hash like API keys are; a copy
    of the database alone does not let anyone sign as us.
    """

    def __init__(self, key: str | None = None, key_file: str | None = None) -> None:
        self._fernet, self.is_dev_default = fernet_from_settings(
            key,
            key_file,
            setting="WEBHOOKS_SECRET_ENCRYPTION_KEY",
            protects="webhook secrets",
            dev_seed=_DEV_KEY_SEED,
        )

    def seal(self, secret: str) -> str:
        return self._fernet.encrypt(secret.encode("ascii")).decode("ascii")

    def open(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode("ascii")
        except InvalidToken:
            raise ValueError("a webhook secret cannot be decrypted: WEBHOOKS_SECRET_ENCRYPTION_KEY changed?") from None
