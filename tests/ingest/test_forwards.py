"""Recovering the customer from forwards and redirects, one fixture per client as it writes them."""

from datetime import UTC, datetime, timedelta, timezone

import pytest

from mailstream_ingest.forwards import detect_forward, find_inline_forward, parse_loose_date, parse_sender
from mailstream_ingest.parsing import parse_mail
from tests.ingest.fixtures import OWNER, eml

JST = timezone(timedelta(hours=9))


@pytest.mark.parametrize(
    ("fixture", "method", "rule", "name", "address", "subject"),
    [
        ("gmail_forward.eml", "forward_inline", "gmail-inline", "Jane Customer", "jane@customer.example", "My order #4411 arrived broken"),
        ("gmail_forward_ja.eml", "forward_inline", "gmail-inline", "山田太郎", "taro.yamada@example.jp", "注文した商品が届きません"),
        ("outlook_desktop_forward.eml", "forward_inline", "outlook-desktop", "Bob Buyer", "bob.buyer@customer.example", "Invoice 2024-118 is wrong"),
        ("outlook_desktop_forward_ja.eml", "forward_inline", "outlook-desktop", "佐藤 花子", "hanako.sato@example.co.jp", "返品について"),
        ("outlook_web_forward.eml", "forward_inline", "outlook-web", "Carlos Cliente", "carlos@customer.example", "Cannot log in"),
        ("apple_mail_forward.eml", "forward_inline", "apple-mail", "Mary Major", "mary.major@customer.example", "Where is my parcel?"),
        ("apple_mail_forward_ja.eml", "forward_inline", "apple-mail", "鈴木 一郎", "ichiro.suzuki@example.ne.jp", "請求書の再発行"),
        ("thunderbird_forward.eml", "forward_inline", "thunderbird", "Ken Tanaka", "ken.tanaka@customer.example", "Question about the warranty"),
        ("thunderbird_forward_ja.eml", "forward_inline", "thunderbird", "高橋 美咲", "misaki@example.jp", "配送先の変更"),
        ("attached_forward.eml", "forward_attached", "attached-message", "Dana Delivery", "dana@customer.example", "Damaged delivery"),
        ("redirect_resent.eml", "redirect", "resent-headers", "Eve Example", "eve@customer.example", "Opening hours?"),
        ("gmail_autoforward.eml", "redirect", "x-forwarded-headers", "Frank Fromm", "frank@customer.example", "Delivery address change"),
    ],
)  # fmt: skip
def test_each_client_resolves_to_the_customer(fixture, method, rule, name, address, subject):
    found = detect_forward(parse_mail(eml(fixture)), {OWNER})
    assert found is not None
    assert (found.method, found.detected_by) == (method, rule)
    assert (found.original_from.name, found.original_from.address) == (name, address)
    assert found.original_subject == subject
    assert found.by is not None and found.by.address == OWNER


@pytest.mark.parametrize(
    ("fixture", "expected"),
    [
        ("gmail_forward.eml", datetime(2024, 3, 4, 23, 40, tzinfo=UTC)),
        ("outlook_desktop_forward_ja.eml", datetime(2024, 3, 5, 9, 12, tzinfo=JST)),
        ("apple_mail_forward.eml", datetime(2024, 3, 5, 9, 12, tzinfo=JST)),
        ("thunderbird_forward.eml", datetime(2024, 3, 5, 9, 12, tzinfo=JST)),
        ("attached_forward.eml", datetime(2024, 3, 4, 17, 30, tzinfo=UTC)),
    ],
)
def test_original_date_is_recovered(fixture, expected):
    found = detect_forward(parse_mail(eml(fixture)), {OWNER})
    assert found is not None and found.original_date == expected


def test_a_customer_forwarding_their_own_mail_stays_the_customer():
    found = detect_forward(parse_mail(eml("customer_forwards_receipt.eml")), {OWNER})
    assert found is not None  # it reached us through the owner's redirect, not as the owner's forward
    assert (found.method, found.detected_by) == ("redirect", "addressed-to-stream")
    assert found.original_from.address == "gina@customer.example"


def test_mail_addressed_to_the_stream_address_came_by_redirect():
    found = detect_forward(
        parse_mail(
            eml("windows1252_labelled_latin1.eml").replace(
                b"To: fwd-7f3a@in.mailstream.test", b"To: Acme <support@acme.example>"
            )
        ),
        {OWNER},
    )
    assert found is not None and (found.method, found.by.address, found.original_from.address) == (
        "redirect", OWNER, "renee@customer.example",
    )  # fmt: skip


def test_a_colleague_on_the_owner_domain_counts_as_the_owner():
    raw = eml("gmail_forward.eml", **{"From: Acme Support <support@acme.example>": "From: Kim <kim@acme.example>"})
    found = detect_forward(parse_mail(raw), {OWNER})
    assert found is not None and found.original_from.address == "jane@customer.example"


def test_free_mail_domain_is_not_a_shared_owner_domain():
    raw = eml("gmail_forward.eml").replace(b"Acme Support <support@acme.example>", b"Stranger <stranger@gmail.com>")
    assert detect_forward(parse_mail(raw), {"acme.support@gmail.com"}) is None


def test_direct_mail_has_no_forward():
    assert detect_forward(parse_mail(eml("iso2022jp.eml")), {OWNER}) is None


@pytest.mark.parametrize(
    ("value", "name", "address"),
    [
        ("Jane Doe <jane@x.example>", "Jane Doe", "jane@x.example"),
        ('"Doe, Jane" <jane@x.example>', "Doe, Jane", "jane@x.example"),
        ("Jane Doe [mailto:jane@x.example]", "Jane Doe", "jane@x.example"),
        ("jane@x.example", "", "jane@x.example"),
        ("<jane@x.example>", "", "jane@x.example"),
    ],
)
def test_parse_sender(value, name, address):
    sender = parse_sender(value)
    assert sender is not None and (sender.name, sender.address) == (name, address)


def test_sender_without_address_is_not_recovered():
    assert parse_sender("Jane Doe") is None


def test_quoted_outlook_block_without_separator_needs_sent_line():
    assert find_inline_forward("Hi\n\nFrom: x@y.example\nTo: z@y.example\n\nbody") is None
    found = find_inline_forward("Hi\n\nFrom: x@y.example\nSent: Tuesday, March 5, 2024 9:12 AM\nTo: z\n\nbody")
    assert found is not None and found[0] == "outlook-desktop"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Monday, March 4, 2024 11:40 PM", datetime(2024, 3, 4, 23, 40, tzinfo=UTC)),
        ("Mon, Mar 4, 2024 at 11:40 PM", datetime(2024, 3, 4, 23, 40, tzinfo=UTC)),
        ("March 5, 2024 at 9:12:00 AM GMT+9", datetime(2024, 3, 5, 9, 12, tzinfo=JST)),
        ("2024年3月5日(火) 9:12", datetime(2024, 3, 5, 9, 12, tzinfo=JST)),
        ("2024年3月5日 9:12:00 JST", datetime(2024, 3, 5, 9, 12, tzinfo=JST)),
        ("Tue, 5 Mar 2024 09:12:00 +0900", datetime(2024, 3, 5, 9, 12, tzinfo=JST)),
        ("not a date", None),
    ],
)
def test_parse_loose_date(value, expected):
    assert parse_loose_date(value) == expected


def test_html_only_outlook_web_forward_is_recognised():
    html = (
        '<html><body><div>Please look at this.</div><hr style="display:inline-block;width:98%">'
        '<div id="divRplyFwdMsg" dir="ltr"><font face="Calibri"><b>From:</b> Hana Hoshino &lt;hana@customer.example&gt;<br>'
        "<b>Sent:</b> Tuesday, March 5, 2024 9:12 AM<br><b>To:</b> support@acme.example<br>"
        "<b>Subject:</b> Refund</font></div><div>I want a refund.</div></body></html>"
    )
    raw = (
        "From: Acme Support <support@acme.example>\r\nTo: fwd@in.mailstream.test\r\nSubject: Fw: Refund\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n" + html
    ).encode()
    found = detect_forward(parse_mail(raw), {OWNER})
    assert found is not None
    assert (found.original_from.name, found.original_from.address, found.original_subject) == (
        "Hana Hoshino",
        "hana@customer.example",
        "Refund",
    )


def test_attached_customer_words_only_for_a_forward_as_attachment():
    from mailstream_ingest.forwards import attached_customer_words

    attached = parse_mail(eml("attached_forward.eml"))
    words = attached_customer_words(attached, detect_forward(attached, {OWNER}))
    assert words is not None
    assert words.text.strip() == "The box was crushed and the item inside is broken."
    assert words.note == "See attached."
    direct = parse_mail(eml("attached_forward.eml"))
    assert attached_customer_words(direct, None) is None
