"""Whatever text a customer controls (the subject, their display name) never becomes a header of an outgoing mail.

A property over arbitrary text, line breaks, NUL and encoded-word look-alikes included: the composed mail has
exactly Mailstream's own header fields, goes only to the customer, and the subject and name survive on one line.
"""

from datetime import UTC, datetime
from email import message_from_bytes, policy

from hypothesis import given
from hypothesis import strategies as st

from mailstream_common.contracts import ReplyRequested
from mailstream_sender.compose import ComposeError, compose
from mailstream_sender.templating import render
from tests.support.fuzzing import fuzz
from tests.support.hostile_mail import INJECTED_SUBJECT

SENDER_NAME, SENDER_ADDRESS = "Acme Support", "support@acme.test"
NOW = datetime(2026, 12, 5, 1, 0, tzinfo=UTC)
OWN_HEADERS = {
    "from",
    "to",
    "subject",
    "date",
    "message-id",
    "in-reply-to",
    "references",
    "mime-version",
    "content-type",
}

customer_text = st.one_of(
    st.text(max_size=80),
    st.lists(
        st.sampled_from(
            [
                "Order",
                "help",
                "\r\n",
                "\n",
                "\r",
                "Bcc:",
                "evil@example.org",
                "\x00",
                " ",
                "é",
                "注文",
                INJECTED_SUBJECT,
                "=?utf-8?q?x=0D=0A?=",
            ]
        ),
        max_size=12,
    ).map("".join),
)


@fuzz()
@given(subject=customer_text, name=customer_text)
def test_customer_text_never_becomes_a_header_of_the_reply(subject, name):
    from mailstream_common.contracts import Address

    request = ReplyRequested.model_validate(
        {
            "account_id": "a" * 32,
            "stream_id": "s" * 32,
            "message_id": "m" * 32,
            "message_id_header": "<reply-1@in.mailstream.test>",
            "from": {"name": SENDER_NAME, "address": SENDER_ADDRESS},
            "to": [{"name": name, "address": "kana@example.net"}],
            "subject": subject,
            "in_reply_to": "<original-1@mail.example.net>",
            "text": "Sorry! It ships today.",
            "requested_by": "agent:k1",
        }
    )
    try:
        composed = compose(request, Address(name=SENDER_NAME, address=SENDER_ADDRESS), render(None, "x", None, {}), NOW)
    except ComposeError:
        assert "\x00" in subject + name  # NUL is refused (inbound parsing removes it before it gets here)
        return
    head = composed.data.split(b"\r\n\r\n", 1)[0]
    names = [line.split(b":", 1)[0].decode().lower() for line in head.split(b"\r\n") if line[:1] not in (b" ", b"\t")]
    assert set(names) <= OWN_HEADERS and len(names) == len(set(names)), names
    assert composed.recipients == ["kana@example.net"]
    parsed = message_from_bytes(composed.data, policy=policy.default)
    assert parsed["Bcc"] is None and parsed["Cc"] is None
    assert [a.addr_spec for a in parsed["To"].addresses] == ["kana@example.net"]


def test_an_encoded_word_look_alike_is_encoded_so_the_recipient_reads_it_literally():
    from mailstream_common.contracts import Address

    request = ReplyRequested.model_validate(
        {
            "account_id": "a" * 32,
            "stream_id": "s" * 32,
            "message_id": "m" * 32,
            "message_id_header": "<reply-1@in.mailstream.test>",
            "from": {"name": SENDER_NAME, "address": SENDER_ADDRESS},
            "to": [{"name": INJECTED_SUBJECT, "address": "kana@example.net"}],
            "subject": INJECTED_SUBJECT,
            "text": "x",
            "requested_by": "agent:k1",
        }
    )
    data = compose(request, Address(name=SENDER_NAME, address=SENDER_ADDRESS), render(None, "x", None, {}), NOW).data
    parsed = message_from_bytes(data, policy=policy.default)
    assert parsed["Subject"] == INJECTED_SUBJECT
    name = parsed["To"].addresses[0].display_name  # long names are split over encoded words: compare without spaces
    assert name.replace(" ", "") == INJECTED_SUBJECT.replace(" ", "") and "\r" not in name
    assert parsed["Bcc"] is None
