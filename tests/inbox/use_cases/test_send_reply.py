"""The guard steps of `send_reply` that decide from what was loaded (no database): table-driven."""

import asyncio

import pytest

from mailstream_inbox.use_cases.send_reply import (
    STEPS,
    Outgoing,
    ReplyRequest,
    agents_may_send,
    answers_a_person,
    has_customer_address,
)

CUSTOMER = {"name": "Ann", "address": "ann@example.net"}


def run(step, conversation, stream=None, **request):
    out = Outgoing(conversation=conversation, request=ReplyRequest(requested_by="t", **request), stream=stream)
    return asyncio.run(step(None, out))


def test_the_steps_run_in_this_order():
    assert [name for name, _ in STEPS] == [
        "stream_exists",
        "not_sent_yet",
        "agents_may_send",
        "has_customer_address",
        "answers_a_person",
        "canned_response_exists",
        "attachments_exist",
    ]


@pytest.mark.parametrize(
    ("stream", "refused"),
    [({"allow_agent_send": True}, False), ({"allow_agent_send": False}, True), ({}, True)],
)
def test_agents_may_send_only_where_the_stream_allows_it(stream, refused):
    assert (run(agents_may_send, {"customer": CUSTOMER}, stream) is not None) == refused


@pytest.mark.parametrize(("customer", "refused"), [(CUSTOMER, False), ({"address": ""}, True), (None, True)])
def test_a_reply_needs_a_customer_address(customer, refused):
    assert (run(has_customer_address, {"customer": customer}) is not None) == refused


@pytest.mark.parametrize(
    ("kind", "address", "headers", "refused"),
    [
        ("reply", "noreply@example.net", [], False),  # an agent may answer anyone
        ("auto_reply", "ann@example.net", [], False),
        ("auto_reply", "noreply@example.net", [], True),
        ("auto_reply", "ann@example.net", [{"name": "Auto-Submitted", "value": "auto-replied"}], True),
        ("auto_reply", "ann@example.net", [{"name": "List-Id", "value": "<l.example.net>"}], True),
    ],
)
def test_automatic_replies_never_answer_a_robot(kind, address, headers, refused):
    conversation = {"customer": {"address": address}}
    assert (run(answers_a_person, conversation, kind=kind, trigger_headers=headers) is not None) == refused
