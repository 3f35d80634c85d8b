"""Make inbound HTML safe to show in an agent's browser (nh3, the Python binding of the Rust `ammonia` sanitiser).

What goes: scripts, styles sheets, event handlers, forms, iframes, `javascript:` links, CSS that could fetch
(`url(...)` lives only in properties we do not allow), and every remote image: a remote `<img src>` is a tracking
pixel until proven otherwise, so the `src` is dropped and the count reported (the raw message keeps the original).
What stays: the structure and inline styling of ordinary mail, links (opened with `rel="noopener noreferrer
nofollow"`), `data:` raster images, and inline `cid:` images rewritten to our attachment URL when we know them.
"""

import html as html_lib
import re
from collections.abc import Mapping
from copy import deepcopy
from dataclasses import dataclass

import nh3

_SAFE_STYLE_PROPERTIES = frozenset(
    {
        "color",
        "background-color",
        "font",
        "font-family",
        "font-size",
        "font-style",
        "font-weight",
        "text-align",
        "text-decoration",
        "text-transform",
        "line-height",
        "letter-spacing",
        "vertical-align",
        "white-space",
        "width",
        "height",
        "max-width",
        "min-width",
        "margin",
        "margin-top",
        "margin-right",
        "margin-bottom",
        "margin-left",
        "padding",
        "padding-top",
        "padding-right",
        "padding-bottom",
        "padding-left",
        "border",
        "border-top",
        "border-right",
        "border-bottom",
        "border-left",
        "border-color",
        "border-style",
        "border-width",
        "border-collapse",
        "border-radius",
        "display",
    }
)

_TAGS = frozenset(nh3.ALLOWED_TAGS | {"font", "tfoot"})
_LINK_SCHEMES = ("http:", "https:", "mailto:", "tel:")
_DATA_IMAGE = re.compile(r"^data:image/(png|gif|jpe?g|webp);base64,", re.IGNORECASE)


def _attributes() -> dict[str, set[str]]:
    attributes = deepcopy(nh3.ALLOWED_ATTRIBUTES)
    for tag in _TAGS:
        attributes.setdefault(tag, set()).update({"style", "dir", "lang", "title"})
    attributes["font"].update({"color", "face", "size"})
    attributes["table"].update({"width", "cellpadding", "cellspacing", "border", "bgcolor"})
    attributes["td"].update({"width", "valign", "bgcolor", "height"})
    attributes["th"].update({"width", "valign", "bgcolor", "height"})
    attributes["a"].discard("rel")
    return attributes


_ATTRIBUTES = _attributes()


@dataclass(frozen=True)
class SanitizedHtml:
    html: str
    remote_images_blocked: int


def sanitize_html(
    source: str, *, inline_images: Mapping[str, str] | None = None, allow_remote_images: bool = False
) -> SanitizedHtml:
    """Sanitise one HTML body. `inline_images` maps a Content-ID (without <>) to the URL that serves that part."""
    inline_images = inline_images or {}
    blocked = 0

    def keep_attribute(tag: str, attribute: str, value: str) -> str | None:
        nonlocal blocked
        if attribute == "href":
            return value if value.strip().lower().startswith(_LINK_SCHEMES) or value.startswith("#") else None
        if tag == "img" and attribute == "src":
            lowered = value.strip().lower()
            if lowered.startswith("cid:"):
                return inline_images.get(value.strip()[4:].strip("<>"))
            if _DATA_IMAGE.match(value.strip()):
                return value
            if allow_remote_images and lowered.startswith(("http:", "https:")):
                return value
            blocked += 1
            return None
        if attribute in ("src", "cite") and not value.strip().lower().startswith(("http:", "https:")):
            return None
        return value

    cleaned = nh3.clean(
        source,
        tags=set(_TAGS),
        clean_content_tags={"script", "style", "title", "head", "noscript", "template"},
        attributes=_ATTRIBUTES,
        attribute_filter=keep_attribute,
        url_schemes={"http", "https", "mailto", "tel", "cid", "data"},
        link_rel="noopener noreferrer nofollow",
        filter_style_properties=set(_SAFE_STYLE_PROPERTIES),
        strip_comments=True,
    )
    return SanitizedHtml(html=cleaned, remote_images_blocked=blocked)


def html_to_text(source: str) -> str:
    """A plain-text rendering of HTML for search and for the text part of an HTML-only reply (good enough, not pretty)."""
    marked = re.sub(r"(?i)<\s*(br|/p|/div|/li|/tr|/h[1-6])\b[^>]*>", "\n", source)
    stripped = nh3.clean(marked, tags=set(), clean_content_tags={"script", "style", "title", "head"})
    text = html_lib.unescape(stripped)
    return re.sub(r"\n{3,}", "\n\n", re.sub(r"[ \t]+\n", "\n", text)).strip()


def text_to_html(text: str) -> str:
    """Escaped text with line breaks kept, for putting plain text into an HTML template."""
    return html_lib.escape(text).replace("\r\n", "\n").replace("\n", "<br>\n")
