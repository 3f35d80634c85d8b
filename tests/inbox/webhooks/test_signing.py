"""Signing: our headers verify with the spec's reference verifier; secrets round-trip through the box."""

import base64
import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.fernet import Fernet
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from mailstream_inbox.webhooks.signing import SecretBox, new_secret, signed_headers


def test_a_new_secret_is_whsec_and_32_random_bytes():
    secret = new_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    assert new_secret() != secret


def test_the_reference_verifier_accepts_our_signature_and_refuses_a_changed_body():
    secret = new_secret()
    body = b'{"type":"message.received","timestamp":"2026-12-05T09:30:00+00:00","data":{"x":"\xc3\xa9"}}'
    headers = signed_headers(secret, "msg_abc", datetime.now(UTC), body)
    assert Webhook(secret).verify(body, headers)["type"] == "message.received"
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body + b" ", headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(body, headers)


def test_the_signature_is_hmac_sha256_over_id_timestamp_body_as_the_spec_says():
    secret = new_secret()
    at = datetime(2026, 12, 5, 9, 30, tzinfo=UTC)
    headers = signed_headers(secret, "msg_1", at, b"{}")
    key = base64.b64decode(secret.removeprefix("whsec_"))
    expected = base64.b64encode(hmac.new(key, f"msg_1.{int(at.timestamp())}.{{}}".encode(), hashlib.sha256).digest())
    assert headers == {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": "v1," + expected.decode(),
    }


def test_an_old_timestamp_is_refused_by_receivers_so_each_attempt_signs_anew():
    secret = new_secret()
    headers = signed_headers(secret, "msg_1", datetime.now(UTC) - timedelta(minutes=10), b"{}")
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(b"{}", headers)


def test_the_box_seals_and_opens_and_a_changed_key_says_so():
    key = Fernet.generate_key().decode()
    box = SecretBox(key)
    secret = new_secret()
    sealed = box.seal(secret)
    assert secret not in sealed and box.open(sealed) == secret
    with pytest.raises(ValueError, match="WEBHOOKS_SECRET_ENCRYPTION_KEY"):
        SecretBox(Fernet.generate_key().decode()).open(sealed)
    with pytest.raises(ValueError, match="Fernet key"):
        SecretBox("not-a-key")
    assert SecretBox().is_dev_default and not box.is_dev_default


def test_during_a_rotation_both_secrets_sign_and_either_verifies():
    old, new = new_secret(), new_secret()
    body = b'{"type":"conversation.updated"}'
    headers = signed_headers([new, old], "msg_2", datetime.now(UTC), body)
    assert len(headers["webhook-signature"].split(" ")) == 2
    assert Webhook(old).verify(body, headers) == {"type": "conversation.updated"}
    assert Webhook(new).verify(body, headers) == {"type": "conversation.updated"}
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(body, headers)
