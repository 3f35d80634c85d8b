"""Bounces: RFC 3464 DSNs, delays, non-standard bounces by heuristics, and auto-replies that are not bounces."""

from mailstream_ingest.bounce_reports import parse_bounce
from mailstream_ingest.parsing import parse_mail
from tests.ingest.fixtures import eml

BOUNCE = "bounce+0123abcd.aaaaaaaaaaaaaaaa@in.mailstream.test"


def test_rfc3464_dsn():
    found = parse_bounce(parse_mail(eml("dsn_bounce_postfix.eml", BOUNCE_ADDRESS=BOUNCE)), "", BOUNCE)
    assert found is not None
    assert (found.status, found.recipient, found.smtp_code, found.permanent) == (
        "bounced",
        "nobody@customer.example",
        550,
        True,
    )
    assert "User unknown" in found.detail
    assert found.dsn_status == "5.1.1"


def test_delayed_dsn_is_deferred_not_bounced():
    raw = eml("dsn_bounce_postfix.eml", BOUNCE_ADDRESS=BOUNCE).replace(b"Action: failed", b"Action: delayed")
    raw = raw.replace(b"Status: 5.1.1", b"Status: 4.4.1")
    found = parse_bounce(parse_mail(raw), "", BOUNCE)
    assert found is not None and (found.status, found.permanent, found.dsn_status) == ("deferred", False, "4.4.1")


def test_non_dsn_bounce_by_heuristics():
    found = parse_bounce(parse_mail(eml("qmail_bounce.eml", BOUNCE_ADDRESS=BOUNCE)), "", BOUNCE)
    assert found is not None
    assert (found.recipient, found.smtp_code, found.permanent) == ("gone@oldhost.example", 550, True)


def test_out_of_office_reply_to_bounce_address_reports_nothing():
    assert parse_bounce(parse_mail(eml("out_of_office.eml", BOUNCE_ADDRESS=BOUNCE)), "holly@customer.example") is None
