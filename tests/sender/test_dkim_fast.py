"""The fast DKIM signer equals stock dkimpy byte for byte. Pure."""

import time

import dkim
import pytest

from mailstream_sender.dkim_fast import FastDKIM
from tests.sender.test_signing import RSA_1024, RSA_2048, composed, pkcs1_pem


@pytest.mark.parametrize("key", [RSA_2048, RSA_1024], ids=["rsa2048", "rsa1024"])
@pytest.mark.parametrize(
    "message",
    [
        composed(),
        b"From: a@acme.test\nTo: b@example.net\nSubject: bare LF\n\nline\n\n\n",  # dkimpy's own parser path
        b"From: a@acme.test\r\nSubject:  spaced \t header \r\nTo: b@x\r\n\r\n",  # empty body
    ],
    ids=["composed", "bare-lf", "empty-body"],
)
def test_fast_signature_is_byte_identical_to_stock_dkimpy(monkeypatch, key, message):
    monkeypatch.setattr(time, "time", lambda: 1_795_000_000.0)  # both put t= from time.time()
    stock = dkim.sign(message, b"sel", b"acme.test", pkcs1_pem(key))
    fast = FastDKIM(message).sign_with_key(b"sel", b"acme.test", key)
    assert fast == stock
