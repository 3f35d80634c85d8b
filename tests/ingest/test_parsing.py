"""MIME parsing of real clients' mail: charsets, broken structure, attachments with ids inbox can extract."""

import pytest

from mailstream_common.mime_parts import extract_part
from mailstream_ingest.parsing import parse_mail
from tests.ingest.fixtures import eml


@pytest.mark.parametrize(
    ("fixture", "subject", "from_name", "text_contains", "warned"),
    [
        ("iso2022jp.eml", "在庫の確認", "田中", "在庫について", False),
        ("shift_jis.eml", "機種依存文字①のテスト", "木村", "①②③", False),
        ("euc_jp.eml", "EUCの件名", "", "EUC-JPの本文です", False),
        ("windows1252_labelled_latin1.eml", "Café order", "Renée Dubois", "“Smart quotes” – and the € sign", False),
        ("raw_8bit_headers_sjis.eml", "見積もりの依頼", "営業部 山本", "見積もりをお願いします", True),
        ("mislabeled_utf8_is_sjis.eml", "mislabeled", "", "中身はShift_JISです", True),
        ("unknown_charset.eml", "hello", "", "plain ascii body", True),
        ("gmail_forward_ja.eml", "Fwd: 注文した商品が届きません", "アクメ サポート", "先週注文した商品", False),
    ],
)
def test_charsets_are_decoded_and_guesses_recorded(fixture, subject, from_name, text_contains, warned):
    parsed = parse_mail(eml(fixture))
    assert parsed.subject == subject
    assert parsed.from_ is not None and parsed.from_.name == from_name
    assert text_contains in parsed.text
    assert bool(parsed.warnings) is warned, parsed.warnings


def test_broken_mime_still_yields_text_attachments_and_warnings():
    parsed = parse_mail(eml("broken_mime.eml"))
    assert parsed.subject == "broken"
    assert "SGVsbG8" in parsed.text  # damaged base64 is kept as it came, not dropped
    assert any("damaged base64" in w for w in parsed.warnings)
    assert any("NoBoundaryInMultipartDefect" in w for w in parsed.warnings)
    assert any(a.filename == "report.pdf" for a in parsed.attachments)


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"no headers at all, just text",
        b"Content-Type: multipart/mixed\r\n\r\n--x\r\n",
        b"Subject: =?utf-8?B?!!!?=\r\nFrom: <<<>>>\r\nDate: 99 Foo 9999\r\n\r\nbody",
        b'From: a@b.example\r\nContent-Type: text/plain; charset="\r\n\r\n\xff\xfe\x00',
        b"Content-Type: message/rfc822\r\n\r\nnot a message",
    ],
)
def test_garbage_never_raises(raw):
    parsed = parse_mail(raw)
    assert isinstance(parsed.text, str)


def test_unparseable_date_is_a_warning():
    parsed = parse_mail(eml("unknown_charset.eml"))
    assert parsed.date is None
    assert any("unparseable Date" in w for w in parsed.warnings)


def test_attachments_have_the_part_ids_inbox_extracts():
    raw = eml("inline_image_and_attachments.eml")
    parsed = parse_mail(raw)
    assert parsed.text.strip() == "See the photo."
    assert 'src="cid:photo1@customer.example"' in (parsed.html or "")
    by_name = {a.filename: a for a in parsed.attachments}
    assert set(by_name) == {"photo.png", "請求書.pdf", "注文一覧.csv"}
    photo = by_name["photo.png"]
    assert (photo.part_id, photo.inline, photo.content_id) == ("1.2", True, "photo1@customer.example")
    assert by_name["請求書.pdf"].inline is False
    for attachment in parsed.attachments:
        data, content_type = extract_part(raw, attachment.part_id)
        assert content_type == attachment.content_type
        assert len(data) == attachment.size


def test_attached_message_is_one_attachment_and_its_headers_are_available():
    parsed = parse_mail(eml("attached_forward.eml"))
    assert [(a.part_id, a.content_type) for a in parsed.attachments] == [("2", "message/rfc822")]
    assert parsed.attached_messages[0]["From"] == "Dana Delivery <dana@customer.example>"


def test_threading_headers():
    parsed = parse_mail(eml("apple_mail_forward.eml"))
    assert parsed.message_id == "<A1B2C3D4-E5F6-4711-8899-AABBCCDDEEFF@acme.example>"
    assert parsed.references == ["<20240305001200.GA1234@customer.example>"]
