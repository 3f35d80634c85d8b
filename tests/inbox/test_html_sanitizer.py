"""HTML sanitising: what must never come back, and what ordinary mail keeps."""

import pytest

from mailstream_inbox.html_sanitizer import html_to_text, sanitize_html

DANGEROUS = [
    ("script element", "<p>hi</p><script>alert(1)</script>", ["<script", "alert(1)"]),
    ("onerror handler", '<img src="x" onerror="alert(1)">', ["onerror", "alert"]),
    ("onclick handler", '<a href="https://a.test" onclick="steal()">x</a>', ["onclick", "steal"]),
    ("javascript link", '<a href="javascript:alert(1)">x</a>', ["javascript:"]),
    ("javascript link, mixed case", '<a href="JaVaScRiPt:alert(1)">x</a>', ["alert"]),
    ("iframe", '<iframe src="https://evil.test"></iframe>', ["iframe", "evil.test"]),
    ("svg onload", "<svg onload=alert(1)><circle/></svg>", ["onload", "alert"]),
    ("style sheet", "<style>body{background:url(https://t.test/x)}</style><p>x</p>", ["t.test", "<style"]),
    ("css url in style attribute", '<p style="background-image:url(https://t.test/p)">x</p>', ["t.test"]),
    ("form", '<form action="https://evil.test"><input name="pw"></form>', ["<form", "<input"]),
    ("meta refresh", '<meta http-equiv="refresh" content="0;url=https://evil.test">', ["evil.test"]),
    ("remote image (tracking pixel)", '<img src="https://t.test/pixel.gif" width="1">', ["t.test"]),
    ("protocol-relative image", '<img src="//t.test/pixel.gif">', ["t.test"]),
    ("object/embed", '<object data="x.swf"></object><embed src="y.swf">', ["<object", "<embed"]),
]


@pytest.mark.parametrize(("name", "html", "forbidden"), DANGEROUS, ids=[d[0] for d in DANGEROUS])
def test_dangerous_content_never_comes_back(name, html, forbidden):
    cleaned = sanitize_html(html).html.lower()
    for fragment in forbidden:
        assert fragment.lower() not in cleaned


KEPT = [
    ("paragraphs and emphasis", "<p>Hello <b>Ann</b> <i>x</i></p>", "<p>Hello <b>Ann</b> <i>x</i></p>"),
    ("safe inline style", '<p style="color: red">x</p>', 'style="color:red"'),
    ("table layout", '<table width="600"><tr><td align="left">x</td></tr></table>', 'width="600"'),
    ("https link gets rel", '<a href="https://acme.test/a">x</a>', 'rel="noopener noreferrer nofollow"'),
    ("mailto link", '<a href="mailto:a@b.test">x</a>', 'href="mailto:a@b.test"'),
    ("data image", '<img src="data:image/png;base64,iVBORw0KGgo=">', "data:image/png;base64,iVBORw0KGgo="),
]


@pytest.mark.parametrize(("name", "html", "expected"), KEPT, ids=[k[0] for k in KEPT])
def test_ordinary_mail_keeps_its_form(name, html, expected):
    assert expected in sanitize_html(html).html


def test_remote_images_are_counted_and_inline_images_point_to_attachments():
    result = sanitize_html(
        '<img src="https://t.test/a.png"><img src="http://t.test/b.png"><img src="cid:logo@acme">',
        inline_images={"logo@acme": "/v1/attachments/abc"},
    )
    assert result.remote_images_blocked == 2
    assert '<img src="/v1/attachments/abc">' in result.html


def test_unknown_cid_is_dropped_not_kept():
    assert "cid:" not in sanitize_html('<img src="cid:nope">').html


def test_remote_images_allowed_for_our_own_agents_html():
    assert (
        "https://acme.test/logo.png"
        in sanitize_html('<img src="https://acme.test/logo.png">', allow_remote_images=True).html
    )


def test_html_to_text_keeps_lines_and_unescapes():
    assert html_to_text("<p>Hello &amp; <b>you</b></p><p>a<br>b</p><script>x()</script>") == "Hello & you\na\nb"
