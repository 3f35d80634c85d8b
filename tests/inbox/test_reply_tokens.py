"""The conversation token in our Message-ID and Reply-To: made, found again, and not found where it is not."""

from mailstream_inbox.reply_tokens import (
    TOKEN_LENGTH,
    message_id_with_token,
    new_token,
    reply_address,
    token_of_address,
    token_of_message_id,
    tokens_in,
)


def test_new_tokens_are_lowercase_base32_and_differ():
    tokens = {new_token() for _ in range(200)}
    assert len(tokens) == 200
    assert all(len(t) == TOKEN_LENGTH and t.isalnum() and t == t.lower() for t in tokens)


def test_token_round_trips_through_message_id_and_reply_address():
    token = new_token()
    message_id = message_id_with_token(token, "In.Mailstream.test")
    assert message_id.endswith("@in.mailstream.test>")
    assert token_of_message_id(message_id) == token
    address = reply_address("fw-1a2b@in.mailstream.test", token)
    assert address == f"fw-1a2b+ms-{token}@in.mailstream.test"
    assert token_of_address(address.upper()) == token  # RCPT TO arrives lower-cased, headers in any case


def test_other_ids_and_addresses_carry_no_token():
    assert token_of_message_id("<0123456789abcdef@in.mailstream.test>") is None
    assert token_of_message_id("<ms-short.01@x>") is None
    assert token_of_address("ann+ms-abcdefgh2345x@example.net") is None
    assert token_of_address("ann@example.net") is None


def test_tokens_in_a_mail_addresses_first_once_each():
    found = tokens_in(
        message_ids=["<ms-bbbbbbbbbbbb.0a@in.x>", "<other@x>", "<ms-aaaaaaaaaaaa.ff@in.x>"],
        addresses=["fw+ms-aaaaaaaaaaaa@in.x", "support@acme.com"],
    )
    assert found == ["aaaaaaaaaaaa", "bbbbbbbbbbbb"]
