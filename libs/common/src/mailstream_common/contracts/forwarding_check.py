"""Mailstream's forwarding check mail: inbox asks sender to mail it to a stream's customer-facing address, and ingest
recognises it when the customer's forwarding rule brings it back. Both sides read the marker, header and body here.
"""

import re

FORWARDING_TEST_MARKER = "mailstream-forwarding-test"
FORWARDING_TEST_HEADER = "X-Mailstream-Forwarding-Test"
FORWARDING_TEST_SENDER_NAME = "Mailstream forwarding check"
FORWARDING_TEST_SUBJECT = "Mailstream forwarding check"
# The token as the body carries it; a forward that dropped the header still carries the body.
FORWARDING_TEST_TOKEN = re.compile(rf"{re.escape(FORWARDING_TEST_MARKER)}:\s*([A-Za-z0-9_-]{{8,128}})")


def forwarding_test_text(stream_address: str, token: str) -> str:
    """The check mail's body: says what it is to a person, and carries the token after the marker."""
    return (
        f"This message checks that mail sent to {stream_address} is forwarded to Mailstream.\n"
        "It will not appear as a conversation. You can ignore it.\n\n"
        f"{FORWARDING_TEST_MARKER}:{token}\n"
    )
