"""Building an outbound reply: addressing, subject, thread headers, content, signature, template."""

from datetime import UTC, datetime

import pytest

from mailstream_common.contracts import Address, EmailTemplate
from mailstream_inbox.reply_builder import (
    DEFAULT_TEMPLATE,
    MAX_REFERENCES,
    ReplyContent,
    ReplyContext,
    auto_reply_refusal,
    build_reply,
    thread_headers,
)

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


def context(**overrides):
    values = {
        "account_id": "a1",
        "conversation_id": "c1",
        "conversation_subject": "Re: Order 12",
        "customer": Address(name="Ann", address="ann@example.net"),
        "stream_id": "s1",
        "stream_address": "support@acme.test",
        "stream_display_name": "Acme Support",
        "agent_name": "Bob",
        "last_inbound_message_id": "<m2@example.net>",
        "last_inbound_references": ["<m0@acme>", "<m1@example.net>"],
    }
    return ReplyContext(**{**values, **overrides})


def build(content=None, **kwargs):
    options = {
        "template": DEFAULT_TEMPLATE,
        "signature": None,
        "inbound_domain": "In.Mailstream.Test",
        "requested_by": "agent:k1",
        "now": NOW,
    }
    return build_reply(context(**kwargs.pop("ctx", {})), content or ReplyContent(text="Hello"), **{**options, **kwargs})


def test_reply_is_addressed_to_the_customer_from_the_stream():
    event = build().event
    assert [a.address for a in event.to] == ["ann@example.net"]
    assert (event.from_.address, event.from_.name) == ("support@acme.test", "Acme Support")
    assert event.subject == "Re: Order 12"


def test_thread_headers_follow_the_last_inbound_message():
    event = build().event
    assert event.in_reply_to == "<m2@example.net>"
    assert event.references == ["<m0@acme>", "<m1@example.net>", "<m2@example.net>"]
    assert event.message_id_header.endswith("@in.mailstream.test>") and event.message_id_header.startswith("<")


def test_message_document_matches_the_event():
    reply = build()
    assert reply.message["_id"] == reply.event.message_id
    assert reply.message["message_id_header"] == reply.event.message_id_header
    assert reply.message["dedup_key"] == reply.event.message_id_header
    assert reply.message["delivery"]["status"] == "queued"
    assert reply.message["direction"] == "outbound"


@pytest.mark.parametrize(
    ("last_id", "refs", "expected_irt", "expected_refs"),
    [
        (None, [], None, []),
        ("m1@x", [], "<m1@x>", ["<m1@x>"]),
        ("<m2@x>", ["<m1@x>", "<m2@x>"], "<m2@x>", ["<m1@x>", "<m2@x>"]),
    ],
)
def test_thread_headers(last_id, refs, expected_irt, expected_refs):
    assert thread_headers(last_id, refs) == (expected_irt, expected_refs)


def test_references_are_capped_keeping_root_and_newest():
    refs = [f"<m{i}@x>" for i in range(50)]
    _, kept = thread_headers("<last@x>", refs)
    assert len(kept) == MAX_REFERENCES and kept[0] == "<m0@x>" and kept[-1] == "<last@x>"


def test_canned_response_placeholders_are_filled():
    reply = build(
        ReplyContent(
            canned_text="Hi {{ customer.name }}, {{ agent.name }} here. {{ unknown }}",
            canned_html="<p>Hi {{ customer.name }}</p>",
        ),
        ctx={"customer": Address(name="<Ann>", address="ann@example.net")},
    )
    assert reply.event.text == "Hi <Ann>, Bob here. "
    assert reply.event.html == "<p>Hi &lt;Ann&gt;</p>"


def test_agent_text_is_not_rendered_as_a_template():
    assert build(ReplyContent(text="{{ customer.name }}")).event.text == "{{ customer.name }}"


def test_agent_html_is_sanitised_and_gets_a_text_part():
    event = build(ReplyContent(html='<p onclick="x()">Hello <script>bad()</script><b>Ann</b></p>')).event
    assert "onclick" not in event.html and "script" not in event.html
    assert event.text == "Hello Ann"


def test_signature_is_appended_below_the_content():
    event = build(ReplyContent(text="Hello", html="<p>Hello</p>"), signature="{{ agent.name }}\nAcme").event
    assert event.text == "Hello\n\n-- \nBob\nAcme\n"
    assert "Bob<br>\nAcme" in event.html


def test_template_is_prefilled_or_left_out():
    template = EmailTemplate(html="<div>{{ content }}</div>{{ stream.address }}", text="{{ content }}")
    assert build(template=template).event.template.html == "<div>{{ content }}</div>support@acme.test"
    assert build(template=None).event.template is None


@pytest.mark.parametrize(
    ("headers", "customer", "refused"),
    [
        ([], "ann@example.net", False),
        ([{"name": "Auto-Submitted", "value": "no"}], "ann@example.net", False),
        ([{"name": "Auto-Submitted", "value": "auto-replied"}], "ann@example.net", True),
        ([{"name": "Precedence", "value": "bulk"}], "ann@example.net", True),
        ([{"name": "List-Id", "value": "<news.acme>"}], "ann@example.net", True),
        ([{"name": "X-Auto-Response-Suppress", "value": "OOF, AutoReply"}], "ann@example.net", True),
        ([], "MAILER-DAEMON@example.net", True),
        ([], "noreply@example.net", True),
        ([], "", True),
    ],
)
def test_auto_reply_refusal(headers, customer, refused):
    assert (auto_reply_refusal(headers, customer) is not None) is refused


def test_chosen_recipients_and_the_conversation_token_go_into_the_event_and_the_document():
    reply_to = Address(name="Acme Support", address="fw-1+ms-abcdefgh2345@in.mailstream.test")
    built = build(
        ctx={
            "to": [Address(address="ann@example.net"), Address(address="carl@example.com")],
            "cc": [Address(address="dora@example.org")],
            "bcc": [Address(address="audit@acme.test")],
            "reply_token": "abcdefgh2345",
            "reply_to": reply_to,
        }
    )
    assert [a.address for a in built.event.to] == ["ann@example.net", "carl@example.com"]
    assert [a.address for a in built.event.bcc] == ["audit@acme.test"]
    assert built.event.reply_to == [reply_to]
    assert built.event.message_id_header.startswith("<ms-abcdefgh2345.")
    assert built.event.message_id_header.endswith("@in.mailstream.test>")
    assert built.message["bcc"] == [{"name": "", "address": "audit@acme.test"}]
    assert built.message["message_id_header"] == built.event.message_id_header


def test_without_a_token_the_message_id_is_plain_and_there_is_no_reply_to():
    built = build()
    assert not built.event.message_id_header.startswith("<ms-")
    assert built.event.reply_to == [] and built.message["reply_to"] == []


def test_a_subject_or_customer_name_holding_line_breaks_is_replied_to_on_one_line():
    customer = Address(name="Kana\r\nBcc: evil@example.org", address="kana@example.net")
    reply = build(ctx={"conversation_subject": "Order help\r\nBcc: evil@example.org", "customer": customer})
    assert reply.event.subject == "Re: Order help Bcc: evil@example.org"
    assert reply.event.to[0].name == "Kana Bcc: evil@example.org"
    assert reply.message["subject"] == reply.event.subject
    assert reply.event.extra_headers == {} and reply.event.cc == []
