"""Threading rules, table-driven: prefixes, reference matching, the subject fallback and its known failure cases."""

from datetime import UTC, datetime, timedelta

import pytest

from mailstream_inbox.conversation_threading import (
    InboundMail,
    ThreadCandidate,
    choose_conversation,
    normalize_message_id,
    normalize_subject,
    reference_ids,
    reply_subject,
    strip_reply_prefixes,
)

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("subject", "stripped", "had_prefix"),
    [
        ("Hello", "Hello", False),
        ("Re: Hello", "Hello", True),
        ("RE: Re: re: Hello", "Hello", True),
        ("Re : Bonjour", "Bonjour", True),
        ("Fwd: Fw: FW: Hello", "Hello", True),
        ("AW: WG: Hallo", "Hallo", True),
        ("SV: VS: Hej", "Hej", True),
        ("Re[2]: Hello", "Hello", True),
        ("Re(3): Hello", "Hello", True),
        ("返信: 注文について", "注文について", True),
        ("転送: 返信: 注文について", "注文について", True),
        ("Re：全角コロン", "全角コロン", True),
        ("Ｒｅ：全角", "全角", True),
        ("回复: 订单", "订单", True),
        ("Report: monthly", "Report: monthly", False),
        ("Regarding your order", "Regarding your order", False),
        ("Fwd:", "", True),
        ("", "", False),
    ],
)
def test_strip_reply_prefixes(subject, stripped, had_prefix):
    assert strip_reply_prefixes(subject) == (stripped, had_prefix)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Re: Where is   my ORDER?", "where is my order?"),
        ("返信: Ｔｅｓｔ　注文", "test 注文"),
        ("Fwd: Re: Hello", "HELLO"),
    ],
)
def test_normalize_subject_compares_equal(a, b):
    assert normalize_subject(a) == normalize_subject(b)


@pytest.mark.parametrize(
    ("subject", "expected"),
    [("Order 12", "Re: Order 12"), ("Re: Re: Order 12", "Re: Order 12"), ("返信: 注文", "Re: 注文"), ("", "Re:")],
)
def test_reply_subject_never_stacks(subject, expected):
    assert reply_subject(subject) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [("<a@b>", "<a@b>"), (" a@b ", "<a@b>"), ("<a@b\r\n >", "<a@b>"), ("", None), (None, None), ("<>", None)],
)
def test_normalize_message_id(value, expected):
    assert normalize_message_id(value) == expected


def test_reference_ids_in_reply_to_first_then_newest_reference():
    assert reference_ids(["<c@x>"], ["<a@x>", "<b@x>", "<c@x>"]) == ["<c@x>", "<b@x>", "<a@x>"]


def conv(cid, *, keys=(), customer="ann@example.net", subject="order 12", age=timedelta(hours=1), stream="s1"):
    return ThreadCandidate(cid, stream, customer, subject, NOW - age, frozenset(keys))


def mail(subject="Re: Order 12", *, irt=(), refs=(), customer="ann@example.net", stream="s1"):
    return InboundMail(stream, customer, subject, tuple(irt), tuple(refs), NOW)


CASES = [
    # (name, mail, referenced candidates, same-subject candidates, expected conversation, reason)
    ("plain reply by In-Reply-To", mail(irt=["<m1@x>"]), [conv("c1", keys=["<m1@x>"])], [], "c1", "in_reply_to"),
    (
        "In-Reply-To differs but References match",
        mail(irt=["<mangled@x>"], refs=["<m0@x>", "<m1@x>"]),
        [conv("c1", keys=["<m1@x>"])],
        [],
        "c1",
        "references",
    ),
    (
        "customer answers our outbound reply",
        mail(irt=["<ours@in.mailstream.test>"]),
        [conv("c1", keys=["<m1@x>", "<ours@in.mailstream.test>"])],
        [],
        "c1",
        "in_reply_to",
    ),
    (
        "new topic sent as a reply with an edited subject follows References",
        mail("Completely different question", irt=["<m1@x>"]),
        [conv("c1", keys=["<m1@x>"])],
        [],
        "c1",
        "in_reply_to",
    ),
    (
        "provider rewrote our Message-ID: subject + customer fallback",
        mail(irt=["<rewritten@outlook.com>"]),
        [],
        [conv("c1")],
        "c1",
        "subject_and_sender",
    ),
    (
        "newsletter replies from different people do not merge",
        mail(irt=["<newsletter@brand>"], customer="bob@example.org"),
        [],
        [conv("c1", customer="ann@example.net")],
        None,
        "new",
    ),
    (
        "subject fallback only within the window",
        mail(),
        [],
        [conv("c1", age=timedelta(days=30))],
        None,
        "new",
    ),
    ("same subject without reply marks is a new conversation", mail("Order 12"), [], [conv("c1")], None, "new"),
    (
        "subject fallback never crosses streams",
        mail(stream="s2"),
        [],
        [conv("c1", stream="s1")],
        None,
        "new",
    ),
    (
        "references never cross streams",
        mail(irt=["<m1@x>"], stream="s2"),
        [conv("c1", keys=["<m1@x>"], stream="s1")],
        [],
        None,
        "new",
    ),
    (
        "Japanese prefixes use the fallback",
        mail("返信: Order 12"),
        [],
        [conv("c1")],
        "c1",
        "subject_and_sender",
    ),
    (
        "most recent same-subject conversation wins",
        mail(),
        [],
        [conv("old", age=timedelta(days=3)), conv("recent", age=timedelta(hours=2))],
        "recent",
        "subject_and_sender",
    ),
    (
        "In-Reply-To beats an older reference",
        mail(irt=["<m2@x>"], refs=["<m1@x>"]),
        [conv("c1", keys=["<m1@x>"]), conv("c2", keys=["<m2@x>"])],
        [],
        "c2",
        "in_reply_to",
    ),
    ("no subject never falls back", mail("Re:"), [], [conv("c1", subject="")], None, "new"),
]


@pytest.mark.parametrize(
    ("name", "inbound", "referenced", "same", "expected", "reason"), CASES, ids=[c[0] for c in CASES]
)
def test_choose_conversation(name, inbound, referenced, same, expected, reason):
    decision = choose_conversation(inbound, referenced, same)
    assert (decision.conversation_id, decision.reason) == (expected, reason)


def test_reference_match_says_which_header_matched():
    by_references = choose_conversation(mail(irt=["<unknown@x>"], refs=["<m1@x>"]), [conv("c1", keys=["<m1@x>"])], [])
    assert (by_references.conversation_id, by_references.reason) == ("c1", "references")


def tokened(cid, token, *, stream="s1", customer="ann@example.net"):
    return ThreadCandidate(cid, stream, customer, "order 12", NOW, reply_token=token)


def test_reply_token_threads_an_outlook_reply_without_references_and_a_new_subject():
    inbound = InboundMail("s1", "ann@example.net", "RE: something else", (), (), NOW, reply_tokens=("abcdefgh2345",))
    decision = choose_conversation(inbound, [], [], tokened=[tokened("c1", "abcdefgh2345")])
    assert (decision.conversation_id, decision.reason) == ("c1", "reply_token")


def test_reply_token_never_crosses_streams():
    inbound = InboundMail("s2", "ann@example.net", "Hello", (), (), NOW, reply_tokens=("abcdefgh2345",))
    decision = choose_conversation(inbound, [], [], tokened=[tokened("c1", "abcdefgh2345", stream="s1")])
    assert decision.is_new and decision.reason == "new"


def test_references_win_over_a_token():
    inbound = InboundMail("s1", "ann@example.net", "Re: x", ("<m1@x>",), (), NOW, reply_tokens=("abcdefgh2345",))
    decision = choose_conversation(inbound, [conv("c1", keys=["<m1@x>"])], [], tokened=[tokened("c2", "abcdefgh2345")])
    assert (decision.conversation_id, decision.reason) == ("c1", "in_reply_to")


def test_subject_fallback_takes_a_participant_but_not_a_stranger():
    candidate = ThreadCandidate(
        "c1",
        "s1",
        "ann@example.net",
        "order 12",
        NOW - timedelta(hours=1),
        participants=frozenset({"carl@example.com"}),
    )
    colleague = choose_conversation(mail(customer="carl@example.com"), [], [candidate])
    stranger = choose_conversation(mail(customer="bob@example.org"), [], [candidate])
    assert (colleague.conversation_id, colleague.reason) == ("c1", "subject_and_sender")
    assert stranger.is_new
