"""Building the outgoing MIME: headers and threading fields, encodings, template, refusals. Pure, no I/O."""

from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest

from mailstream_common.contracts import Address, EmailTemplate, ReplyRequested
from mailstream_sender.compose import ComposeError, compose, reply_subject
from mailstream_sender.templating import render

NOW = datetime(2026, 11, 27, 1, 0, tzinfo=UTC)
SENDER = Address(name="Acme Support", address="support@acme.test")


def request(**overrides) -> ReplyRequested:
    fields = {
        "account_id": "a" * 32,
        "stream_id": "s" * 32,
        "message_id": "m" * 32,
        "message_id_header": "<reply-1@in.mailstream.test>",
        "from": {"name": "Acme Support", "address": "support@acme.test"},
        "to": [{"name": "Kana Customer", "address": "kana@example.net"}],
        "subject": "My order has not arrived",
        "in_reply_to": "<original-1@mail.example.net>",
        "references": ["<root@mail.example.net>", "<original-1@mail.example.net>"],
        "text": "Sorry! It ships today.",
        "requested_by": "agent:k1",
    }
    fields.update(overrides)
    return ReplyRequested.model_validate(fields)


def build(req: ReplyRequested, template: EmailTemplate | None = None) -> tuple[bytes, EmailMessage]:
    rendered = render(template, req.text, req.html, req.template_context)
    data = compose(req, SENDER, rendered, NOW).data
    return data, message_from_bytes(data, policy=policy.default)  # type: ignore[return-value]


def test_headers_and_threading_fields():
    data, msg = build(request(cc=[{"name": "", "address": "boss@example.net"}]))
    assert msg["From"].addresses[0].display_name == "Acme Support"
    assert msg["From"].addresses[0].addr_spec == "support@acme.test"
    assert msg["To"].addresses[0].addr_spec == "kana@example.net"
    assert msg["Cc"].addresses[0].addr_spec == "boss@example.net"
    assert msg["Subject"] == "Re: My order has not arrived"
    assert msg["Message-ID"] == "<reply-1@in.mailstream.test>"
    assert msg["In-Reply-To"] == "<original-1@mail.example.net>"
    assert msg["References"].split() == ["<root@mail.example.net>", "<original-1@mail.example.net>"]
    assert msg["MIME-Version"] == "1.0"
    assert msg["Date"].datetime == NOW
    assert msg.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
    assert msg.get_body(("plain",)).get_content().strip() == "Sorry! It ships today."
    assert b"\r\n" in data and b"\n" not in data.replace(b"\r\n", b"")  # CRLF only
    assert all(len(line) <= 998 for line in data.split(b"\r\n"))
    assert data.isascii()  # 7-bit: any relay takes it


def test_in_reply_to_is_appended_to_references_when_missing():
    _, msg = build(request(references=["<root@mail.example.net>"]))
    assert msg["References"].split() == ["<root@mail.example.net>", "<original-1@mail.example.net>"]


def test_long_message_ids_stay_unencoded_for_threading():
    long_ids = [f"<{'x' * 70}{i}@mail.gmail.com>" for i in range(4)]
    data, msg = build(request(in_reply_to=long_ids[-1], references=long_ids))
    assert msg["In-Reply-To"] == long_ids[-1]
    assert msg["References"].split() == long_ids
    assert b"=?" not in data.split(b"\r\n\r\n")[0].split(b"References:")[1].split(b"\r\nX-")[0].split(b"MIME")[0]


@pytest.mark.parametrize(
    ("subject", "is_reply", "expected"),
    [
        ("Order", True, "Re: Order"),
        ("Re: Order", True, "Re: Order"),
        ("RE: Order", True, "RE: Order"),
        ("Aw: Bestellung", True, "Aw: Bestellung"),
        ("Re[2]: Order", True, "Re[2]: Order"),
        ("返信: 注文", True, "返信: 注文"),
        ("  Order\t status ", True, "Re: Order status"),
        ("Order", False, "Order"),
        ("", True, "Re:"),
    ],
)
def test_reply_subject_never_stacks_prefixes(subject, is_reply, expected):
    assert reply_subject(subject, is_reply) == expected


def test_japanese_subject_names_and_body_are_encoded_and_decode_back():
    req = request(
        subject="注文した商品がまだ届いていません。至急確認していただけますでしょうか？",
        to=[{"name": "山田 花子", "address": "hanako@example.jp"}],
        cc=[{"name": "佐藤, 太郎", "address": "taro@example.jp"}],
        text="山田様\nお問い合わせありがとうございます。本日発送いたします。",
    )
    sender = Address(name="アクメ サポートセンター", address="support@acme.test")
    data = compose(req, sender, render(None, req.text, None, {}), NOW).data
    header_block = data.split(b"\r\n\r\n")[0]
    assert header_block.isascii() and b"=?utf-8?" in header_block
    assert all(len(line) <= 78 for line in header_block.split(b"\r\n"))
    msg = message_from_bytes(data, policy=policy.default)
    assert msg["Subject"] == "Re: 注文した商品がまだ届いていません。至急確認していただけますでしょうか？"
    assert msg["From"].addresses[0].display_name == "アクメ サポートセンター"
    assert msg["To"].addresses[0].display_name == "山田 花子"
    assert msg["To"].addresses[0].addr_spec == "hanako@example.jp"
    assert msg["Cc"].addresses[0].display_name == "佐藤, 太郎"
    plain = msg.get_body(("plain",))
    assert plain.get_content_charset() == "utf-8"
    assert plain["Content-Transfer-Encoding"] in ("base64", "quoted-printable")
    assert plain.get_content().replace("\r\n", "\n").strip() == req.text
    assert "お問い合わせ" in msg.get_body(("html",)).get_content()


def test_ascii_display_name_with_specials_is_quoted():
    _, msg = build(request(to=[{"name": 'Doe, "Johnny" J.', "address": "john@example.net"}]))
    assert msg["To"].addresses[0].display_name == 'Doe, "Johnny" J.'


def test_template_wraps_text_and_escapes_it_inside_html():
    template = EmailTemplate(
        html="<html><body><div class='c'>{{ content }}</div><p>{{ brand }}</p></body></html>",
        text="{{ content }}\n-- \n{{ brand }}",
    )
    req = request(text="Use <b>code</b> 5 & more\nthanks", template=template, template_context={"brand": "Acme & Co"})
    _, msg = build(req, template)
    html = msg.get_body(("html",)).get_content()
    assert "<div class='c'>Use &lt;b&gt;code&lt;/b&gt; 5 &amp; more<br>" in html
    assert "<p>Acme &amp; Co</p>" in html
    text = msg.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert text.startswith("Use <b>code</b> 5 & more\nthanks\n-- \nAcme & Co")


def test_attachments_make_multipart_mixed():
    req = request(
        attachments=[{"filename": "請求書.pdf", "content_type": "application/pdf", "content": "JVBERi0xLjQK"}]
    )
    _, msg = build(req)
    assert msg.get_content_type() == "multipart/mixed"
    attachment = next(msg.iter_attachments())
    assert attachment.get_filename() == "請求書.pdf"
    assert attachment.get_content() == b"%PDF-1.4\n"


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"extra_headers": {"X-Tag": "a\r\nBcc: victim@example.net"}}, "line break"),
        ({"extra_headers": {"X-Bad Name": "v"}}, "invalid header name"),
        ({"extra_headers": {"From": "evil@example.net"}}, "cannot be overridden"),
        ({"to": [{"name": "x", "address": "not-an-address"}]}, "not a deliverable address"),
        ({"to": [{"name": "x", "address": "a@b.test\r\nBcc: v@x"}]}, "line break"),
        ({"to": []}, "no recipient"),
        ({"message_id_header": "no-brackets@x"}, "not a <msg-id>"),
        ({"in_reply_to": "<a@b>\r\nX: y"}, "not a <msg-id>"),
    ],
)
def test_refuses_what_would_be_header_injection_or_invalid(overrides, error):
    req = request(**overrides)
    with pytest.raises(ComposeError, match=error):
        compose(req, SENDER, render(None, req.text, None, {}), NOW)


def test_extra_headers_are_added():
    _, msg = build(request(extra_headers={"X-Mailstream-Conversation": "c1", "Auto-Submitted": "auto-replied"}))
    assert msg["X-Mailstream-Conversation"] == "c1"
    assert msg["Auto-Submitted"] == "auto-replied"


def test_line_breaks_in_the_subject_are_collapsed_not_injected():
    _, msg = build(request(subject="hi\r\nBcc: victim@example.net"))
    assert msg["Subject"] == "Re: hi Bcc: victim@example.net"
    assert msg["Bcc"] is None
    _, msg = build(request(to=[{"name": "Kana\r\nBcc: v@x.test", "address": "kana@example.net"}]))
    assert msg["To"].addresses[0].display_name == "Kana Bcc: v@x.test"
    assert msg["Bcc"] is None


@pytest.mark.parametrize(
    ("text", "encoding"),
    [
        ("Plain ASCII reply.\nSecond line.", "7bit"),
        ("Très bien, à bientôt ! Ihre Bestellung ist unterwegs.", "quoted-printable"),
        ("ご注文の商品は本日発送いたしました。到着まで今しばらくお待ちください。", "base64"),
        ("x" * 2000, "quoted-printable"),  # an ASCII line too long for SMTP
        ("trailing spaces   \nand a tab\t\n.leading dot\nFrom the start", "7bit"),
    ],
)
def test_body_parts_use_a_7bit_transfer_encoding_that_round_trips(text, encoding):
    data, msg = build(request(text=text))
    assert all(len(line) <= 998 for line in data.split(b"\r\n"))
    plain = msg.get_body(("plain",))
    assert plain["Content-Transfer-Encoding"] == encoding
    assert plain.get_content_charset() == "utf-8"
    assert plain.get_content().replace("\r\n", "\n").rstrip("\n") == text
    html = msg.get_body(("html",)).get_content()
    assert html.replace("\r\n", "\n").rstrip("\n") == render(None, text, None, {}).html


def test_reply_to_is_a_header_and_bcc_only_an_envelope_recipient():
    req = request(
        cc=[{"name": "", "address": "carl@example.com"}],
        bcc=[{"name": "Audit", "address": "audit@acme.test"}],
        reply_to=[{"name": "Acme Support", "address": "fw-1+ms-abcdefgh2345@in.mailstream.test"}],
    )
    rendered = render(None, req.text, req.html, req.template_context)
    composed = compose(req, SENDER, rendered, NOW)
    parsed = message_from_bytes(composed.data, policy=policy.default)
    assert parsed["Reply-To"].addresses[0].addr_spec == "fw-1+ms-abcdefgh2345@in.mailstream.test"
    assert parsed["Bcc"] is None and b"audit@acme.test" not in composed.data
    assert composed.recipients == ["kana@example.net", "carl@example.com", "audit@acme.test"]


def test_reply_to_given_twice_is_refused():
    req = request(
        reply_to=[{"name": "", "address": "fw-1@in.mailstream.test"}], extra_headers={"Reply-To": "x@example.com"}
    )
    with pytest.raises(ComposeError, match="Reply-To"):
        build(req)


def test_an_undeliverable_bcc_is_refused_like_any_recipient():
    with pytest.raises(ComposeError, match="not a deliverable address"):
        build(request(bcc=[{"name": "", "address": "audit at acme.test"}]))
