"""Header-safe text and normalised addresses in API payloads."""

import pytest
from pydantic import BaseModel, ValidationError

from mailstream_inbox.payload_types import EmailAddressStr, HeaderSafeStr


class Named(BaseModel):
    subject: HeaderSafeStr
    address: EmailAddressStr | None = None


@pytest.mark.parametrize("value", ["Hello\r\nBcc: victim@example.com", "line\nbreak", "carriage\rreturn", "nul\x00"])
def test_header_safe_text_refuses_line_breaks_and_nul(value):
    with pytest.raises(ValidationError) as caught:
        Named(subject=value)
    assert caught.value.errors()[0]["loc"] == ("subject",)


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("Support@ACME.com", "Support@acme.com"),
        ("  help@mails.acme.co.uk ", "help@mails.acme.co.uk"),
        ("first.last+tag@example.org", "first.last+tag@example.org"),
        ("info@bücher.example", "info@xn--bcher-kva.example"),
    ],
)
def test_email_addresses_are_normalised(given, stored):
    assert Named(subject="s", address=given).address == stored


@pytest.mark.parametrize(
    "bad",
    [
        "no-at-sign",
        "two@@acme.com",
        "a@b@acme.com",
        "@acme.com",
        "support@",
        "support@localhost",
        "support@acme.com\r\nBcc: x@y.z",
        "sup port@acme.com",
        ".dot@acme.com",
        "a..b@acme.com",
        "support@-acme.com",
        "support@acme.123",
        "x" * 65 + "@acme.com",
    ],
)
def test_invalid_email_addresses_are_refused(bad):
    with pytest.raises(ValidationError) as caught:
        Named(subject="s", address=bad)
    assert caught.value.errors()[0]["loc"] == ("address",)
