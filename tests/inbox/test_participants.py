"""Participants, default reply recipients and the confidentiality warnings: pure rules, table-free."""

from mailstream_inbox.participants import (
    MAX_PARTICIPANTS,
    OwnAddresses,
    Recipients,
    base_address,
    choose_recipients,
    default_recipients,
    merge_participants,
    own_addresses_of,
    participants_of_message,
    recipient_warnings,
)

OWN = own_addresses_of({"address": "support@acme.com", "forwarding_address": "fw-1a2b@in.mailstream.test"})


def box(address, name=""):
    return {"name": name, "address": address}


def inbound(**fields):
    message = {
        "customer": box("ann@example.net", "Ann"),
        "from": box("ann@example.net", "Ann"),
        "to": [box("Support@Acme.com")],
        "cc": [],
        "forwarded": None,
    }
    message.update(fields)
    return message


def test_own_addresses_include_sub_addresses_and_ignore_case():
    assert "SUPPORT@acme.com" in OWN
    assert "fw-1a2b+ms-abcdefgh2345@in.mailstream.test" in OWN
    assert "ann@example.net" not in OWN
    assert base_address("Ann+Shop@Example.NET") == "ann@example.net"


def test_participants_are_customer_and_to_cc_without_own_addresses():
    message = inbound(
        to=[box("support@acme.com"), box("Carl@Example.com")],
        cc=[box("fw-1a2b@in.mailstream.test"), box("dora@example.org"), box("carl@example.com")],
    )
    assert participants_of_message(message, OWN) == ["ann@example.net", "carl@example.com", "dora@example.org"]


def test_a_forwarded_mail_brings_only_the_customer_and_its_forwarder_is_own():
    message = inbound(
        **{"from": box("agent@acme.com")},
        to=[box("fw-1a2b@in.mailstream.test")],
        cc=[box("boss@acme.com")],
        forwarded={"method": "forward_inline", "by": box("agent@acme.com")},
    )
    assert participants_of_message(message, OWN) == ["ann@example.net"]


def test_a_redirect_keeps_the_original_to_and_cc():
    message = inbound(cc=[box("carl@example.com")], forwarded={"method": "redirect", "by": box("agent@acme.com")})
    assert participants_of_message(message, OWN) == ["ann@example.net", "carl@example.com"]


def test_participants_stay_bounded_and_keep_the_first():
    many = [f"p{i}@example.com" for i in range(MAX_PARTICIPANTS + 10)]
    merged = merge_participants(["ann@example.net"], many)
    assert len(merged) == MAX_PARTICIPANTS and merged[0] == "ann@example.net"
    assert merge_participants(["a@x.io"], ["a@x.io", "b@x.io"]) == ["a@x.io", "b@x.io"]


def test_default_recipients_are_reply_all_minus_own_addresses():
    latest = inbound(to=[box("support@acme.com"), box("carl@example.com")], cc=[box("dora@example.org", "Dora")])
    chosen = default_recipients(box("ann@example.net", "Ann"), latest, OWN)
    assert chosen.to == [box("ann@example.net", "Ann")]
    assert chosen.cc == [box("carl@example.com"), box("dora@example.org", "Dora")]
    assert chosen.bcc == []


def test_default_recipients_when_a_cc_participant_wrote_last():
    latest = inbound(
        **{"from": box("carl@example.com", "Carl")},
        to=[box("fw-1a2b+ms-abcdefgh2345@in.mailstream.test"), box("ann@example.net")],
        cc=[],
    )
    chosen = default_recipients(box("ann@example.net"), latest, OWN)
    assert [a["address"] for a in chosen.to] == ["ann@example.net", "carl@example.com"]
    assert chosen.cc == []


def test_default_recipients_of_a_forwarded_mail_are_the_customer_only():
    latest = inbound(cc=[box("boss@acme.com")], forwarded={"method": "forward_attached", "by": box("agent@acme.com")})
    assert default_recipients(box("ann@example.net"), latest, OWN) == Recipients(to=[box("ann@example.net")])


def test_explicit_fields_replace_defaults_field_by_field_without_duplicates():
    defaults = Recipients(to=[box("ann@example.net")], cc=[box("carl@example.com")])
    chosen = choose_recipients(defaults, to=None, cc=[], bcc=[box("Audit@Acme.com"), box("ann@example.net")])
    assert chosen == Recipients(to=[box("ann@example.net")], cc=[], bcc=[box("audit@acme.com")])


def test_a_recipient_who_never_wrote_in_is_a_warning():
    chosen = Recipients(to=[box("ann@example.net")], cc=[box("carl@example.com")], bcc=[box("eve@example.org")])
    warnings = recipient_warnings(chosen, ["ann@example.net", "carl@example.com"], "ann@example.net")
    assert warnings == ["bcc eve@example.org is not a participant of this conversation"]
    assert recipient_warnings(Recipients(to=[box("ann@example.net")]), [], "Ann@example.net") == []


def test_own_addresses_of_an_empty_stream():
    assert "x@y.z" not in OwnAddresses.of(None, "")
