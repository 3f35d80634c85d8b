"""Auto-replies are held back for automatic mail (RFC 3834 and friends) and for null/daemon/no-reply senders."""

import pytest

from mailstream_automation.facts import build_facts
from mailstream_automation.loop_protection import automatic_mail_reason, split_auto_reply
from mailstream_common.contracts.conversations import AddTagsAction, AutoReplyAction


def reason(headers=(), sender="kana@example.net"):
    return automatic_mail_reason(build_facts(from_address=sender, headers=headers))


@pytest.mark.parametrize(
    ("headers", "sender", "expected"),
    [
        ([], "kana@example.net", None),
        ([("Auto-Submitted", "no")], "kana@example.net", None),
        ([("Auto-Submitted", "No ; comment")], "kana@example.net", None),
        ([("Auto-Submitted", "auto-replied")], "kana@example.net", "auto_submitted"),
        ([("auto-submitted", "auto-generated; owner-email=x@y")], "kana@example.net", "auto_submitted"),
        ([("Auto-Submitted", "auto-notified")], "kana@example.net", "auto_submitted"),
        ([("Precedence", "bulk")], "kana@example.net", "precedence"),
        ([("Precedence", "JUNK")], "kana@example.net", "precedence"),
        ([("Precedence", "list")], "kana@example.net", "precedence"),
        ([("Precedence", "first-class")], "kana@example.net", None),
        ([("List-Id", "<news.acme.com>")], "kana@example.net", "mailing_list"),
        ([("X-Autoreply", "yes")], "kana@example.net", "autoresponder"),
        ([("X-Autorespond", "1")], "kana@example.net", "autoresponder"),
        ([("X-Auto-Response-Suppress", "OOF, AutoReply")], "kana@example.net", "suppressed"),
        ([("X-Auto-Response-Suppress", "DR, RN")], "kana@example.net", None),
        ([("Return-Path", "<>")], "kana@example.net", "null_sender"),
        ([], "", "null_sender"),
        ([], "MAILER-DAEMON@mx.example.net", "daemon_sender"),
        ([], "postmaster@example.net", "daemon_sender"),
        ([], "no-reply@shop.example", "no_reply_sender"),
        ([], "noreply-orders@shop.example", "no_reply_sender"),
        ([], "donotreply@shop.example", "no_reply_sender"),
        ([], "replies@shop.example", None),
    ],
)
def test_automatic_mail_is_recognised(headers, sender, expected):
    found = reason(headers, sender)
    if expected is None:
        assert found is None
    else:
        assert found is not None and found.split(":", 1)[0] == expected


def test_split_keeps_other_actions_and_names_the_reason():
    actions = [AutoReplyAction(canned_response_id="c"), AddTagsAction(tags=["x"])]
    kept, skipped = split_auto_reply(actions, "precedence: Precedence: bulk")
    assert kept == [actions[1]]
    assert skipped == [{"type": "auto_reply", "reason": "precedence: Precedence: bulk"}]
    assert split_auto_reply(actions, None) == (actions, [])
