"""VERP bounce addresses: what is issued decodes back to its message id; anything else is not ours."""

import pytest

from mailstream_common import verp

SECRET = b"verp secret"
DOMAIN = "bounces.mailstream.test"
ISSUED = verp.encode_bounce_address("0123abcd", SECRET, DOMAIN)


def test_issued_address_has_the_documented_shape():
    local, _, domain = ISSUED.partition("@")
    assert domain == DOMAIN
    assert local.startswith(verp.PREFIX + "0123abcd.")
    assert len(local) <= 64


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        (ISSUED, "0123abcd"),
        (ISSUED.upper(), "0123abcd"),
        (f"  {ISSUED}  ", "0123abcd"),
        (verp.encode_bounce_address("f" * 40, SECRET, DOMAIN), "f" * 40),
        (verp.encode_bounce_address("0123abcd", b"other secret", DOMAIN), None),
        (verp.encode_bounce_address("0123abcd", SECRET, "elsewhere.example"), None),
        (ISSUED.replace("0123abcd", "0123abce"), None),
        (verp.encode_bounce_address("f" * 41, SECRET, DOMAIN), None),
        (verp.encode_bounce_address("not-hex", SECRET, DOMAIN), None),
        (f"bounce+0123abcd@{DOMAIN}", None),
        (f"support@{DOMAIN}", None),
        ("", None),
    ],
)
def test_decode(address, expected):
    assert verp.decode_bounce_address(address, SECRET, DOMAIN) == expected


def test_domain_is_compared_without_case():
    assert verp.decode_bounce_address(ISSUED, SECRET, DOMAIN.upper()) == "0123abcd"
