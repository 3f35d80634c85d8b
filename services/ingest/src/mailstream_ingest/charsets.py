"""Turning the bytes real mailers send into text: charset aliases, guesses for unlabeled 8-bit, RFC 2047 words.

Every function here returns text and a list of warnings; none of them raises on bad input.
"""

import codecs
import contextlib
import re
from email.header import decode_header

# Labels that mailers use for a superset in practice (the WHATWG encoding standard makes the same choices).
_ALIASES = {
    "us-ascii": "cp1252",  # 8-bit bytes under an ASCII label are nearly always windows-1252
    "ascii": "cp1252",
    "iso-8859-1": "cp1252",
    "latin1": "cp1252",
    "latin-1": "cp1252",
    "shift_jis": "cp932",
    "shift-jis": "cp932",
    "sjis": "cp932",
    "x-sjis": "cp932",
    "ms_kanji": "cp932",
    "windows-31j": "cp932",
    "iso-2022-jp": "iso2022_jp_ext",
    "csiso2022jp": "iso2022_jp_ext",
    "euc-jp": "euc_jis_2004",
    "x-euc-jp": "euc_jis_2004",
    "ks_c_5601-1987": "cp949",
    "euc-kr": "cp949",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-unknown": "utf-8",
    "unknown-8bit": "utf-8",
    "utf8": "utf-8",
}

# Tried in order for unlabeled or mislabeled 8-bit text. UTF-8 first (it rarely decodes by accident), then the
# Japanese encodings this product's users meet, then windows-1252 which decodes almost anything.
_GUESSES = ("utf-8", "iso2022_jp_ext", "cp932", "euc_jis_2004", "cp1252")

_ISO2022_ESCAPE = re.compile(rb"\x1b[\$\(][@BJ]")

CONTROL_CHARACTERS = re.compile(r"\r\n|[\x00-\x08\x0a-\x1f\x7f]")
"""What a one-line header value may not hold once decoded: line breaks (header injection), NUL, other controls."""


def codec_for(label: str | None) -> str | None:
    """The Python codec to use for a MIME charset label, or None if Python knows none."""
    if not label:
        return None
    name = _ALIASES.get(label.strip().strip('"').lower(), label.strip().strip('"').lower())
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


def guess_decode(data: bytes) -> tuple[str, str]:
    """Decode unlabeled bytes with the first candidate that fits; returns (text, codec used)."""
    if _ISO2022_ESCAPE.search(data):
        try:
            return data.decode("iso2022_jp_ext"), "iso2022_jp_ext"
        except UnicodeDecodeError:
            pass
    for candidate in _GUESSES:
        if candidate == "iso2022_jp_ext":
            continue
        try:
            return data.decode(candidate), candidate
        except UnicodeDecodeError:
            continue
    return data.decode("utf-8", errors="replace"), "utf-8 (with replacements)"


def decode_text(data: bytes, label: str | None, where: str) -> tuple[str, list[str]]:
    """Decode a body or header fragment declared as `label`; fall back to guessing, and say so."""
    warnings: list[str] = []
    codec = codec_for(label)
    if label and codec is None:
        warnings.append(f"{where}: unknown charset {label!r}")
    if codec is not None:
        if codec in ("cp1252", "ascii") and _ISO2022_ESCAPE.search(data):
            codec = "iso2022_jp_ext"  # ISO-2022-JP labelled as ASCII: the escape sequences give it away
        try:
            return data.decode(codec), warnings
        except UnicodeDecodeError:
            warnings.append(f"{where}: not valid {label}")
    elif not label:
        try:
            return data.decode("ascii"), warnings
        except UnicodeDecodeError:
            pass
    text, used = guess_decode(data)
    if data and (label or not data.isascii()):
        warnings.append(f"{where}: decoded as {used}")
    return text, warnings


def header_to_text(raw_value: str, name: str, fallback_label: str | None = None) -> tuple[str, list[str]]:
    """A raw header value (8-bit bytes kept as surrogate escapes) to text, RFC 2047 words decoded."""
    warnings: list[str] = []
    value = raw_value
    if any("\udc80" <= ch <= "\udcff" for ch in value):
        data = value.encode("ascii", errors="surrogateescape")
        try:
            value = data.decode("utf-8")
        except UnicodeDecodeError:
            value, more = decode_text(data, fallback_label, f"header {name} (8-bit)")
            warnings.extend(more or [f"header {name}: raw 8-bit bytes"])
    value = re.sub(r"\r?\n[ \t]+", " ", value).replace("\r", "").replace("\n", "")
    if "\x1b" in value and _ISO2022_ESCAPE.search(value.encode("utf-8", "surrogateescape")):
        with contextlib.suppress(UnicodeError):  # raw ISO-2022-JP (7-bit, so not caught as 8-bit above)
            value = value.encode("ascii").decode("iso2022_jp_ext")
    if "=?" not in value:
        return _one_line(value, name, warnings), warnings
    try:
        fragments = decode_header(value)
    except Exception:  # a malformed encoded word: keep the text as it came
        warnings.append(f"header {name}: malformed encoded word")
        return _one_line(value, name, warnings), warnings
    out: list[str] = []
    for fragment, label in fragments:
        if isinstance(fragment, str):
            out.append(fragment)
        elif label is None:
            out.append(fragment.decode("raw-unicode-escape", errors="replace"))
        else:
            text, more = decode_text(fragment, label, f"header {name}")
            out.append(text)
            warnings.extend(more)
    return _one_line("".join(out), name, warnings), warnings


def _one_line(value: str, name: str, warnings: list[str]) -> str:
    """A decoded header value as one line: an encoded CR/LF (`=0D=0A`), NUL or other control becomes a space."""
    if CONTROL_CHARACTERS.search(value):
        warnings.append(f"header {name[:40]}: line breaks or control characters removed")
        value = CONTROL_CHARACTERS.sub(" ", value)
    return value.strip()


def without_surrogates(text: str) -> str:
    """Text safe for JSON: bytes smuggled as surrogate escapes are decoded (UTF-8, else replaced)."""
    if not any("\ud800" <= ch <= "\udfff" for ch in text):
        return text
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
