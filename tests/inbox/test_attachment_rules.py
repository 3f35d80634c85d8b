"""The pure attachment decisions: sniffed content types, safe file names, limits and omission."""

import pytest

from mailstream_inbox.attachment_rules import attachment_limit, clean_filename, omission, sniff_content_type

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00" * 20


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"%PDF-1.7\n...", "application/pdf"),
        (PNG, "image/png"),
        (b"PK\x03\x04" + b"\x00" * 30, "application/zip"),
        ("返品の手順\n".encode(), "text/plain"),
        (b"\xff\xfe\x00\x01\x80\x81", "application/octet-stream"),
        (b"", "application/octet-stream"),
    ],
)
def test_the_type_comes_from_the_bytes(data: bytes, expected: str) -> None:
    assert sniff_content_type(data) == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("invoice.pdf", "invoice.pdf"),
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\ann\\請求書.pdf", "請求書.pdf"),
        ("evil\r\nBcc: x.pdf", "evilBcc: x.pdf"),
        ("ｶﾞ.txt", "ｶﾞ.txt"),
        ("", None),
        (None, None),
        ("..", None),
        ("/", None),
    ],
)
def test_file_names_lose_paths_and_control_characters(name: str | None, expected: str | None) -> None:
    assert clean_filename(name) == expected


def test_a_long_name_keeps_its_extension() -> None:
    cleaned = clean_filename("あ" * 300 + ".pdf")
    assert cleaned is not None and len(cleaned) == 255 and cleaned.endswith(".pdf")


def test_the_account_limit_overrides_the_default() -> None:
    assert attachment_limit(None, 100) == 100
    assert attachment_limit({"attachment_max_bytes": None}, 100) == 100
    assert attachment_limit({"attachment_max_bytes": 7}, 100) == 7


def test_only_parts_over_the_limit_are_omitted() -> None:
    assert omission(100, 100) is None
    omitted = omission(101, 100)
    assert omitted is not None and omitted["reason"] == "too_large" and "101" in omitted["detail"]
