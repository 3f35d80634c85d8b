"""The account email template around a reply, rendered in Jinja2's sandbox.

`{{ content }}` is the reply itself. In the HTML template it is the reply's HTML (inbox sanitised it) or, when the
reply has only text, that text HTML-escaped with its line breaks kept; in the text template it is the plain text.
Other variables come from the command's `template_context` (customer name and the like) and are autoescaped in HTML.
"""

import html
from dataclasses import dataclass

from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from markupsafe import Markup

from mailstream_common.contracts import EmailTemplate

_HTML_ENV = ImmutableSandboxedEnvironment(autoescape=True, undefined=StrictUndefined)
_TEXT_ENV = ImmutableSandboxedEnvironment(autoescape=False, undefined=StrictUndefined, keep_trailing_newline=True)


class TemplateRenderError(ValueError):
    """The template cannot be rendered (syntax, unknown variable, or something the sandbox forbids)."""


@dataclass(frozen=True)
class Rendered:
    text: str
    html: str


def text_to_html(text: str) -> str:
    """Plain text as a safe HTML fragment: escaped, line breaks kept."""
    return html.escape(text).replace("\r\n", "\n").replace("\n", "<br>\n")


def render(template: EmailTemplate | None, text: str, html_body: str | None, context: dict[str, str]) -> Rendered:
    """The reply wrapped in `template`, or as it is when there is no template."""
    html_content = html_body if html_body is not None else text_to_html(text)
    if template is None:
        return Rendered(text=text, html=html_content)
    variables = {k: v for k, v in context.items() if k != "content"}
    try:
        rendered_html = _HTML_ENV.from_string(template.html).render(variables, content=Markup(html_content))  # noqa: S704 - sanitised by inbox or escaped above
        rendered_text = _TEXT_ENV.from_string(template.text).render(variables, content=text)
    except TemplateError as exc:
        raise TemplateRenderError(f"email template cannot be rendered: {exc}") from exc
    return Rendered(text=rendered_text, html=rendered_html)
