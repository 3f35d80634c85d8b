"""SSE tickets."""


def test_sse_tickets_stand_for_their_key_for_a_minute_only():
    from mailstream_inbox.security import Principal, issue_ticket, read_ticket

    principal = Principal(account_id="a" * 32, role="agent", key_id="k" * 32, key_name="Alice")
    ticket, expires = issue_ticket(principal, "secret", now=1000.0)
    assert expires == 1060.0
    assert read_ticket(ticket, "secret", now=1059.0) == principal
    assert read_ticket(ticket, "secret", now=1061.0) is None, "expired"
    assert read_ticket(ticket, "other-secret", now=1001.0) is None, "another deployment's ticket"
    body, _, signature = ticket.partition(".")
    assert read_ticket(body[:-2] + "xx." + signature, "secret", now=1001.0) is None, "edited"
    assert read_ticket(body, "secret", now=1001.0) is None
