"""Fernet keys for secrets a service must read back (DKIM private keys, webhook signing secrets), from settings.

Those cannot be stored as hashes like API keys are, so they are encrypted at rest (AES-128-CBC + HMAC-SHA256) with a
key from the environment (or a mounted file): a copy of the database alone reveals nothing. Without a key a
development run still works, with a fixed key derived from a seed and a warning that names the setting.
"""

import base64
import hashlib
import logging
from pathlib import Path

from cryptography.fernet import Fernet

log = logging.getLogger(__name__)

GENERATE_HINT = "python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'"


def fernet_from_settings(
    key: str | None, key_file: str | None, *, setting: str, protects: str, dev_seed: bytes
) -> tuple[Fernet, bool]:
    """(the Fernet of `key`, or of the key in `key_file`; is_dev_default). A malformed key is a ValueError naming
    `setting`; no key at all gives the development key of `dev_seed`, with a warning."""
    if not key and key_file:
        key = Path(key_file).read_text().strip()
    if key:
        try:
            return Fernet(key.encode("ascii")), False
        except (ValueError, TypeError):
            raise ValueError(
                f"{setting} must be a Fernet key: urlsafe base64 of 32 random bytes ({GENERATE_HINT})"
            ) from None
    log.warning(
        f"{setting} is not set: {protects} are encrypted with a built-in development key; set a secret key in "
        "production"
    )
    return Fernet(base64.urlsafe_b64encode(hashlib.sha256(dev_seed).digest())), True
