"""DKIM signing: every signature verifies with dkimpy and with Perl's Mail::DKIM against a real DNS server; the
key documents are loaded or refused."""

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from mailstream_common.contracts import Address, EmailTemplate, ReplyRequested
from mailstream_sender.compose import compose
from mailstream_sender.signing import SigningKey, load_signing_key, sign
from mailstream_sender.templating import render
from tests.sender.dkim_verifiers import DkimDns, dkim_txt_record
from tests.sender.domains_stub import DomainKey

RSA_2048 = rsa.generate_private_key(public_exponent=65537, key_size=2048)
RSA_1024 = rsa.generate_private_key(public_exponent=65537, key_size=1024)
ED25519 = ed25519.Ed25519PrivateKey.generate()
ACCOUNT = "a" * 32
RSA_PEM = RSA_1024.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
).decode()
ED25519_PEM = ED25519.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
).decode()


def composed(subject: str = "注文の件 / your order", text: str = "本日発送いたします。\nThanks!") -> bytes:
    req = ReplyRequested.model_validate(
        {
            "account_id": ACCOUNT,
            "stream_id": "s" * 32,
            "message_id": "m" * 32,
            "message_id_header": "<reply-1@in.mailstream.test>",
            "from": {"name": "アクメ サポート", "address": "support@acme.test"},
            "to": [{"name": "山田 花子", "address": "hanako@example.jp"}],
            "subject": subject,
            "in_reply_to": "<original-1@mail.example.jp>",
            "text": text,
            "requested_by": "system",
        }
    )
    template = EmailTemplate(html="<html><body>{{ content }}<hr>Acme</body></html>", text="{{ content }}\n-- \nAcme")
    rendered = render(template, req.text, req.html, {})
    sender = Address(name="アクメ サポート", address="support@acme.test")
    return compose(req, sender, rendered, datetime(2026, 11, 27, tzinfo=UTC)).data


def pkcs1_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )


@pytest.fixture(scope="module")
def dkim_dns() -> Iterator[DkimDns]:
    server = DkimDns(
        {
            "s2048._domainkey.acme.test": dkim_txt_record(RSA_2048.public_key()),
            "s1024._domainkey.acme.test": dkim_txt_record(RSA_1024.public_key()),
            "ed._domainkey.acme.test": dkim_txt_record(ED25519.public_key()),
        }
    ).start()
    yield server
    server.stop()


@pytest.mark.integration
@pytest.mark.parametrize(("selector", "key"), [("s2048", RSA_2048), ("s1024", RSA_1024)])
def test_rsa_signature_verifies_with_dkimpy_and_mail_dkim_over_real_dns(dkim_dns, selector, key):
    signed = sign(composed(), SigningKey("acme.test", selector, key))
    assert signed.startswith(b"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/simple; d=acme.test;")
    assert dkim_dns.verify_with_dkimpy(signed) == [True]
    verdict = dkim_dns.verify_with_mail_dkim(signed)
    assert "signature acme.test rsa-sha256 pass" in verdict and "result pass" in verdict
    tampered = signed.replace(b"Thanks", b"Thank5", 1) if b"Thanks" in signed else signed + b"x"
    assert dkim_dns.verify_with_dkimpy(tampered) == [False]
    assert "result fail" in dkim_dns.verify_with_mail_dkim(tampered)


@pytest.mark.integration
def test_ed25519_second_signature_verifies_alongside_rsa(dkim_dns):
    signed = sign(composed(), SigningKey("acme.test", "s2048", RSA_2048, "ed", ED25519))
    first, second = signed.split(b"DKIM-Signature:")[1:3]
    assert b"a=ed25519-sha256" in first and b"s=ed;" in first
    assert b"a=rsa-sha256" in second
    assert dkim_dns.verify_with_dkimpy(signed) == [True, True]
    # Debian 12's Mail::DKIM answers 'unsupported algorithm ed25519-sha256' (even with CryptX installed), so the
    # Ed25519 check is dkimpy's (libsodium through PyNaCl: not the OpenSSL that signed); it must pass the RSA one.
    assert "signature acme.test rsa-sha256 pass" in dkim_dns.verify_with_mail_dkim(signed)


def test_signing_key_never_shows_key_material():
    key = load_signing_key(DomainKey("acme.test", ACCOUNT, "s1", RSA_1024, "ed", ED25519).document())
    assert "PRIVATE" not in repr(key) and "PRIVATE" not in str(key)
    assert repr(key) == "SigningKey('acme.test', selector='s1', ed25519='ed')"


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"algorithm": "ed25519-sha256"}, "unsupported DKIM algorithm"),
        ({"private_key_pem": ED25519_PEM}, "not an RSA key"),
        ({"ed25519": {"selector": "ed", "private_key_pem": RSA_PEM}}, "not an Ed25519 key"),
    ],
)
def test_an_unusable_key_document_is_a_value_error(change, error):
    document = {**DomainKey("acme.test", ACCOUNT, "s1", RSA_1024).document(), **change}
    with pytest.raises(ValueError, match=error):
        load_signing_key(document)
