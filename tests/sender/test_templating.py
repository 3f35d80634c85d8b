"""Rendering a reply into an account's template: the reply's HTML is used as is, plain text is escaped, and a
broken or hostile template is an error, not a crash. Pure."""

import pytest

from mailstream_common.contracts import EmailTemplate
from mailstream_sender.templating import Rendered, TemplateRenderError, render


def test_template_uses_the_reply_html_as_is():
    template = EmailTemplate(html="<main>{{ content }}</main>", text="{{ content }}")
    rendered = render(template, "plain", "<p>Hello <strong>there</strong></p>", {})
    assert rendered.html == "<main><p>Hello <strong>there</strong></p></main>"


def test_without_template_the_content_is_sent_as_is():
    rendered = render(None, "a < b\nc", None, {})
    assert rendered == Rendered(text="a < b\nc", html="a &lt; b<br>\nc")


@pytest.mark.parametrize(
    "template",
    [
        EmailTemplate(html="{{ content.__class__.__mro__ }}", text="{{ content }}"),  # sandbox
        EmailTemplate(html="{{ content }}{% for %}", text="{{ content }}"),  # syntax
        EmailTemplate(html="{{ content }}{{ unknown_variable }}", text="{{ content }}"),  # undefined
    ],
)
def test_a_broken_or_hostile_template_is_an_error_not_a_crash(template):
    with pytest.raises(TemplateRenderError):
        render(template, "hi", None, {})
