"""Placeholder rendering: filled, escaped in HTML, empty when unknown, sandboxed, never an exception."""

import pytest

from mailstream_common.contracts import EmailTemplate
from mailstream_inbox.placeholders import PlaceholderContext, apply_template, fill, prefill_template, syntax_error

CONTEXT = PlaceholderContext(
    customer_name="Ann <b>Customer</b>",
    customer_address="ann@example.net",
    agent_name="Bob",
    conversation_subject="Order 12",
    stream_address="support@acme.test",
)

CASES = [
    (
        "text fills every placeholder",
        "{{ customer.name }}|{{ customer.address }}|{{ agent.name }}",
        "text",
        "Ann <b>Customer</b>|ann@example.net|Bob",
    ),
    (
        "subject and stream",
        "{{ conversation.subject }} via {{ stream.address }}",
        "text",
        "Order 12 via support@acme.test",
    ),
    ("html escapes values", "<p>{{ customer.name }}</p>", "html", "<p>Ann &lt;b&gt;Customer&lt;/b&gt;</p>"),
    ("unknown placeholder is empty", "Hi {{ nobody }}{{ customer.nickname }}{{ a.b.c }}!", "text", "Hi !"),
    ("no placeholders", "plain text", "text", "plain text"),
    ("broken syntax is sent as written", "Hi {{ customer.name ", "text", "Hi {{ customer.name "),
    ("sandbox blocks internals", "{{ customer.__class__.__mro__ }}x", "text", "x"),
    ("filters work", "{{ customer.name | upper }}", "text", "ANN <B>CUSTOMER</B>"),
    ("default filter for missing values", "{{ agent.nickname | default('team') }}", "text", "team"),
]


@pytest.mark.parametrize(("name", "source", "mode", "expected"), CASES, ids=[c[0] for c in CASES])
def test_fill(name, source, mode, expected):
    assert fill(source, CONTEXT, mode) == expected


@pytest.mark.parametrize(
    "source", ["{{ '{0.__class__}'.format(customer) }}", "{{ customer.items.__globals__ }}", "{{ cycler.__init__ }}"]
)
def test_sandbox_leaks_no_python_internals(source):
    rendered = fill(source, CONTEXT)
    assert "class" not in rendered.replace(source, "") and "function" not in rendered.replace(source, "")


def test_huge_range_does_not_run_away():
    assert fill("{% for i in range(10**9) %}x{% endfor %}", CONTEXT).startswith("{%")


@pytest.mark.parametrize(
    ("source", "bad"), [("{{ a }}", False), ("{{ a ", True), ("{% if %}", True), ("{{ content }}", False)]
)
def test_syntax_error(source, bad):
    assert (syntax_error(source) is not None) is bad


def test_prefill_leaves_only_content_for_sender_and_defangs_values():
    context = PlaceholderContext(customer_name="{{ evil }}{% raw %}", stream_address="support@acme.test")
    template = EmailTemplate(
        html="<p>{{ content }}</p><small>{{ stream.address }} {{ customer.name }}</small>",
        text="{{ content }}\n-- {{ stream.address }}",
    )
    prefilled = prefill_template(template, context)
    assert prefilled.text == "{{ content }}\n-- support@acme.test"
    assert prefilled.html.startswith("<p>{{ content }}</p><small>support@acme.test ")
    assert "{{ evil" not in prefilled.html and "{%" not in prefilled.html


def test_apply_template_escapes_text_content():
    html, text = apply_template("<div>{{ content }}</div>", "{{ content }}\n--", "a < b\nline 2", None)
    assert html == "<div>a &lt; b<br>\nline 2</div>"
    assert text == "a < b\nline 2\n--"
