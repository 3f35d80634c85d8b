"""Provider forwarding confirmations and Mailstream's own forwarding check."""

import pytest

from mailstream_ingest.confirmations import detect_forwarding_test, detect_provider_confirmation
from mailstream_ingest.parsing import parse_mail
from tests.ingest.fixtures import eml


@pytest.mark.parametrize(
    ("fixture", "code", "link_start"),
    [
        ("gmail_forwarding_confirmation.eml", "812345678", "https://mail-settings.google.com/mail/vf-%5BANGjdJ8x"),
        ("gmail_forwarding_confirmation_ja.eml", "812345679", "https://mail-settings.google.com/mail/vf-%5BANGjdJ9ja"),
    ],
)
def test_gmail_confirmation(fixture, code, link_start):
    found = detect_provider_confirmation(parse_mail(eml(fixture)))
    assert found is not None
    assert (found.provider, found.code, found.requested_by) == ("gmail", code, "owner.acme@gmail.com")
    assert found.link is not None and found.link.startswith(link_start)


def test_generic_confirmation_only_from_known_providers():
    raw = (
        b"From: Yahoo <no-reply@cc.yahoo-inc.com>\r\nTo: fwd@in.mailstream.test\r\n"
        b"Subject: Verify your forwarding address\r\n\r\nYour code: AB12CD\r\nhttps://login.yahoo.com/forward/verify?x=1\r\n"
    )
    found = detect_provider_confirmation(parse_mail(raw))
    assert found is not None and (found.provider, found.code) == ("yahoo", "AB12CD")
    assert found.link == "https://login.yahoo.com/forward/verify?x=1"
    spoofed = raw.replace(b"no-reply@cc.yahoo-inc.com", b"phish@evil.example")
    assert detect_provider_confirmation(parse_mail(spoofed)) is None
    customer = raw.replace(b"no-reply@cc.yahoo-inc.com", b"jane.doe@yahoo.com")  # a customer, not the robot
    assert detect_provider_confirmation(parse_mail(customer)) is None


@pytest.mark.parametrize("fixture", ["gmail_forward.eml", "iso2022jp.eml", "dsn_bounce_postfix.eml"])
def test_ordinary_mail_is_no_confirmation(fixture):
    assert detect_provider_confirmation(parse_mail(eml(fixture))) is None


@pytest.mark.parametrize("fixture", ["forwarding_test_redirected.eml", "forwarding_test_forwarded.eml"])
def test_forwarding_check_token(fixture):
    assert detect_forwarding_test(parse_mail(eml(fixture))) == "tok_3f9a8b7c6d5e4f30"


def test_no_forwarding_check_token_in_ordinary_mail():
    assert detect_forwarding_test(parse_mail(eml("gmail_forward.eml"))) is None
