"""DKIM signing of outgoing mail with the From domain's active keys (`signing_keys.py` fetches them). Pure: keys
in, signed bytes out; keys are never logged."""

from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from .dkim_fast import FastDKIM


class SigningKeyUnavailable(RuntimeError):
    """The domains service could not tell us the key right now (down, 5xx, bad answer): try the mail later."""


@dataclass(frozen=True, repr=False)
class SigningKey:
    """A domain's active DKIM keys, loaded. `repr` names the selector only: keys must never reach a log."""

    domain: str
    selector: str
    rsa_key: rsa.RSAPrivateKey
    ed25519_selector: str | None = None
    ed25519_key: ed25519.Ed25519PrivateKey | None = None

    def __repr__(self) -> str:
        return f"SigningKey({self.domain!r}, selector={self.selector!r}, ed25519={self.ed25519_selector!r})"


def load_signing_key(document: dict) -> SigningKey:
    """The domains service's answer as loaded keys; ValueError on anything unusable."""
    if document.get("algorithm", "rsa-sha256") != "rsa-sha256":
        raise ValueError(f"unsupported DKIM algorithm {document.get('algorithm')!r}")
    rsa_key = load_pem_private_key(document["private_key_pem"].encode(), password=None)
    if not isinstance(rsa_key, rsa.RSAPrivateKey):
        raise ValueError("private_key_pem is not an RSA key")
    ed_selector = ed_key = None
    if second := document.get("ed25519"):
        loaded = load_pem_private_key(second["private_key_pem"].encode(), password=None)
        if not isinstance(loaded, ed25519.Ed25519PrivateKey):
            raise ValueError("ed25519.private_key_pem is not an Ed25519 key")
        ed_selector, ed_key = second["selector"], loaded
    return SigningKey(document["domain"].lower(), document["selector"], rsa_key, ed_selector, ed_key)


def sign(message: bytes, key: SigningKey) -> bytes:
    """`message` with its DKIM-Signature header(s) prepended: RSA-SHA256, plus Ed25519-SHA256 (RFC 8463) when the
    domain has that key. Each signature covers the message only, not the other signature."""
    domain = key.domain.encode()
    headers = FastDKIM(message).sign_with_key(key.selector.encode(), domain, key.rsa_key)
    if key.ed25519_key is not None and key.ed25519_selector:
        ed = FastDKIM(message).sign_with_key(
            key.ed25519_selector.encode(), domain, key.ed25519_key, signature_algorithm=b"ed25519-sha256"
        )
        headers = ed + headers
    return headers + message
