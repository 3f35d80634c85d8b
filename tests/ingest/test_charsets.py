"""Charset decoding: labels, aliases and encoded words."""

import pytest

from mailstream_ingest.charsets import decode_text, header_to_text


@pytest.mark.parametrize(
    ("data", "label", "expected"),
    [
        ("テスト".encode("iso2022_jp"), "iso-2022-jp", "テスト"),
        ("テスト".encode("iso2022_jp"), "us-ascii", "テスト"),  # escape sequences give it away
        ("①".encode("cp932"), "shift_jis", "①"),  # NEC special characters need cp932
        ("“x”".encode("cp1252"), "iso-8859-1", "“x”"),
        ("é".encode(), None, "é"),
    ],
)
def test_decode_text(data, label, expected):
    assert decode_text(data, label, "t")[0] == expected


def test_header_with_adjacent_encoded_words_joins_them():
    assert header_to_text("=?utf-8?q?caf=C3=A9?= =?utf-8?q?_ok?=", "Subject")[0] == "café ok"
