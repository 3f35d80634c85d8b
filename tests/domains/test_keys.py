"""Key pairs, selectors and encryption at rest."""

import base64
from datetime import UTC, datetime

import pytest
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import serialization

from mailstream_domains.keys import KeyVault, generate_ed25519, generate_rsa, next_selector


@pytest.mark.parametrize("bits", [1024, 2048])
def test_rsa_keys_of_both_lengths(bits: int) -> None:
    pair = generate_rsa(bits)
    private = serialization.load_pem_private_key(pair.private_pem, password=None)
    assert private.key_size == bits  # type: ignore[union-attr]
    public = serialization.load_der_public_key(base64.b64decode(pair.public_key_b64))
    assert public.key_size == bits  # type: ignore[union-attr]
    assert pair.private_pem.startswith(b"-----BEGIN RSA PRIVATE KEY-----")
    assert "PRIVATE" not in repr(pair) and pair.private_pem.decode() not in repr(pair)


def test_other_rsa_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="1024, 2048"):
        generate_rsa(512)


def test_ed25519_public_key_is_the_raw_32_bytes() -> None:
    pair = generate_ed25519()
    assert len(base64.b64decode(pair.public_key_b64)) == 32


@pytest.mark.parametrize(
    ("existing", "expected"),
    [
        ([], "ms2026111"),
        (["ms2026111"], "ms2026112"),
        (["ms2026111", "ms2026119"], "ms20261110"),
        (["ms2026101", "ms2026102"], "ms2026111"),
        (["custom"], "ms2026111"),
    ],
)
def test_selectors_name_the_month_and_never_repeat(existing: list[str], expected: str) -> None:
    assert next_selector(datetime(2026, 11, 27, tzinfo=UTC), existing) == expected


def test_vault_round_trip_and_ciphertext_hides_the_key() -> None:
    vault = KeyVault(Fernet.generate_key().decode())
    pem = generate_rsa(1024).private_pem
    token = vault.encrypt(pem)
    assert pem.decode() not in token and "PRIVATE" not in token
    assert vault.decrypt(token) == pem
    assert not vault.is_dev_default


def test_a_different_key_cannot_decrypt() -> None:
    token = KeyVault(Fernet.generate_key().decode()).encrypt(b"secret")
    with pytest.raises(ValueError, match="DOMAINS_KEY_ENCRYPTION_KEY changed"):
        KeyVault(Fernet.generate_key().decode()).decrypt(token)


def test_key_from_a_mounted_secret_file(tmp_path) -> None:
    key = Fernet.generate_key().decode()
    (tmp_path / "kek").write_text(key + "\n")
    assert KeyVault(key_file=str(tmp_path / "kek")).decrypt(KeyVault(key).encrypt(b"x")) == b"x"


def test_a_malformed_key_is_refused_with_instructions() -> None:
    with pytest.raises(ValueError, match="Fernet key"):
        KeyVault("not-a-key")


def test_dev_default_warns(caplog: pytest.LogCaptureFixture) -> None:
    vault = KeyVault()
    assert vault.is_dev_default
    assert "DOMAINS_KEY_ENCRYPTION_KEY is not set" in caplog.text
