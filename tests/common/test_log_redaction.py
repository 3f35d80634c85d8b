"""Log lines never carry a full mail address (issue 17): the formatter keeps only the domain, wherever the address
is (message, extra fields, an exception's text). The e2e test `test_data_protection` scans real services' logs."""

import io
import json
import logging

import pytest

from mailstream_common import logs


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("from ann@example.org", "from ***@example.org"),
        ("Ann.O+tag@Sub.Example.ORG wrote", "***@Sub.Example.ORG wrote"),
        ('"to": ["b@c.co.jp", "d_e@f.io"]', '"to": ["***@c.co.jp", "***@f.io"]'),
        (
            "GET http://host:8/v1/suppressions/ann@example.org 200",
            "GET http://host:8/v1/suppressions/***@example.org 200",
        ),
        ("escaped \\nann@example.org", "escaped \\***@example.org"),
        ("no address: @mention, a@b, user@localhost", "no address: @mention, a@b, user@localhost"),
    ],
)
def test_addresses_keep_only_their_domain(text: str, expected: str):
    assert logs.redact_addresses(text) == expected


def test_a_log_line_with_an_address_anywhere_keeps_only_the_domain():
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    logs.configure_logging("test-service", "INFO")
    stream = io.StringIO()
    logging.getLogger().handlers[0].setStream(stream)
    try:
        try:
            raise ValueError("refused recipient Ann@Example.org")
        except ValueError:
            logging.getLogger("mailstream.test").exception(
                "mail from ann@example.org", extra={"recipients": ["bob@example.net"], "customer": "ann@example.org"}
            )
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
    output = stream.getvalue()
    line = json.loads(output.strip().splitlines()[-1])
    assert line["message"] == "mail from ***@example.org"
    assert line["recipients"] == ["***@example.net"] and line["customer"] == "***@example.org"
    assert "***@Example.org" in line["exc_info"]
    assert "ann@" not in output.lower() and "bob@" not in output
