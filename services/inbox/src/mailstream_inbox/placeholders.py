"""Fill `{{ customer.name }}`-style placeholders in canned responses, signatures and email templates.

Admins write these texts, agents and automation use them, customers read the result, so rendering is sandboxed
(Jinja2's `SandboxedEnvironment`: no attribute access to Python internals, bounded `range`), HTML output is
autoescaped (a customer named `<script>` stays text), and an unknown placeholder renders as nothing instead of
failing a reply. A text that does not even parse is sent as written (and refused up front by the API, which calls
`syntax_error` when a canned response or template is saved).
"""

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from jinja2 import ChainableUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment
from markupsafe import Markup

from mailstream_common.contracts import EmailTemplate

from .html_sanitizer import text_to_html

log = logging.getLogger(__name__)

Mode = Literal["text", "html"]

MAX_OUTPUT_CHARS = 1_000_000
CONTENT_PLACEHOLDER = re.compile(r"\{\{\s*content\s*\}\}")

_environments = {
    "text": SandboxedEnvironment(autoescape=False, undefined=ChainableUndefined, keep_trailing_newline=True),
    "html": SandboxedEnvironment(autoescape=True, undefined=ChainableUndefined, keep_trailing_newline=True),
}


@dataclass(frozen=True)
class PlaceholderContext:
    """Everything a canned response may mention. Missing values render empty."""

    customer_name: str = ""
    customer_address: str = ""
    agent_name: str = ""
    conversation_subject: str = ""
    stream_address: str = ""
    stream_name: str = ""

    def as_flat_strings(self) -> dict[str, str]:
        """The same values as flat names (`customer_name`...), the shape of `ReplyRequested.template_context`."""
        return {
            "customer_name": self.customer_name,
            "customer_address": self.customer_address,
            "agent_name": self.agent_name,
            "conversation_subject": self.conversation_subject,
            "stream_address": self.stream_address,
            "stream_name": self.stream_name,
        }

    def as_variables(self) -> dict[str, Any]:
        return {
            "customer": {"name": self.customer_name, "address": self.customer_address},
            "agent": {"name": self.agent_name},
            "conversation": {"subject": self.conversation_subject},
            "stream": {"address": self.stream_address, "name": self.stream_name},
        }


def syntax_error(source: str) -> str | None:
    """Why `source` is not a valid template, or None. Used to refuse bad texts with a 422 when they are saved."""
    try:
        _environments["text"].parse(source)
    except TemplateError as exc:
        return f"template syntax error: {exc}"
    return None


def render(source: str, variables: Mapping[str, Any], mode: Mode = "text") -> str:
    """Render `source` with `variables`; never raises (a broken or forbidden template comes back unrendered)."""
    try:
        result = _environments[mode].from_string(source).render(**variables)
    except TemplateError as exc:  # includes SecurityError of the sandbox
        log.warning("placeholder rendering failed; sending the text as written", extra={"error": str(exc)})
        return source
    except (ArithmeticError, TypeError, ValueError, OverflowError, MemoryError, RecursionError) as exc:
        log.warning("placeholder rendering failed; sending the text as written", extra={"error": repr(exc)})
        return source
    return result[:MAX_OUTPUT_CHARS]


def fill(source: str, context: PlaceholderContext, mode: Mode = "text") -> str:
    return render(source, context.as_variables(), mode)


_JINJA_MARKERS = re.compile(r"\{[{%#]|[}%#]\}")


def _defang(value: str) -> str:
    """Break `{{`, `{%`, `{#` (and closers) in a value so that text filled in now cannot be parsed as a template
    later, when sender renders `{{ content }}` into the prefilled template."""
    return _JINJA_MARKERS.sub(lambda m: f"{m.group(0)[0]} {m.group(0)[1]}", value)


def prefill_template(template: EmailTemplate, context: PlaceholderContext) -> EmailTemplate:
    """Fill every placeholder of an email template except `{{ content }}`, which stays for sender to fill.

    Sender renders the template with only `content` (and flat context names) and strict undefined variables, so
    `{{ customer.name }}` and friends are resolved here, with the same rules as canned responses.
    """
    variables = context.as_variables()
    safe = {group: {key: _defang(value) for key, value in values.items()} for group, values in variables.items()}
    keep = Markup("{{ content }}")
    html = render(template.html, {**safe, "content": keep}, "html")
    text = render(template.text, {**safe, "content": keep}, "text")
    return EmailTemplate(html=html, text=text)


def apply_template(
    template_html: str, template_text: str, content_text: str, content_html: str | None
) -> tuple[str, str]:
    """The email template around a message body: (html, text). Used for the preview; sender does the same.

    `content_html` must already be sanitised (callers pass `sanitize_html` output); text is escaped here."""
    safe_html = content_html if content_html is not None else text_to_html(content_text)
    body_html = Markup(safe_html)  # noqa: S704 - sanitised by the caller or escaped just above
    html = render(template_html, {"content": body_html}, "html")
    text = render(template_text, {"content": content_text}, "text")
    return html, text
