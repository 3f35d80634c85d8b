"""Conversations an agent can trust, end to end through real SMTP, the broker, the gateway and the relay:

- the people on Cc of the customer's mail become participants, a reply goes to all of them by default, the
  response names its recipients, and a third party added by hand is sent to but warned about (never silently);
- a Cc'd participant's reply-all threads into the same conversation;
- an Outlook-style answer with no In-Reply-To/References and an edited subject threads by the conversation token
  our reply carried (Reply-To sub-address); a token never moves a mail into another stream's conversation;
- two strangers answering one newsletter get two conversations;
- a mail forwarded as an attachment shows the customer's words, the forwarder's note kept apart;
- each inbound message says why it joined its conversation.
"""

from collections.abc import Iterator
from email.message import EmailMessage
from email.utils import make_msgid

import pytest

from tests.e2e.conftest import System, running_system, wait_for_json
from tests.e2e.scenarios_support import (
    LIVE_ENV,
    EventListener,
    conversations_of,
    messages_of,
    new_account,
    new_stream,
    relay_dumps,
    relay_mail_to,
    smtp_send,
    strip_sink_headers,
    wait_for_conversation,
    wait_for_sent,
)
from tests.support.waiting import wait_for_sync

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def system(backends, tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    with running_system(backends, tmp_path_factory, "people", {"INGEST_AUTH_ENABLED": "false", **LIVE_ENV}) as running:
        yield running


def mail(sender: str, to: list[str], subject: str, text: str, *, cc=(), in_reply_to=None, references=None):
    message = EmailMessage()
    message["From"] = sender
    message["To"] = ", ".join(to)
    if cc:
        message["Cc"] = ", ".join(cc)
    message["Subject"] = subject
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2].strip(">"))
    if in_reply_to:
        message["In-Reply-To"] = in_reply_to
    if references:
        message["References"] = references
    message.set_content(text)
    return message


def post_reply(api, conversation_id: str, **body) -> dict:
    response = api.post(f"/v1/conversations/{conversation_id}/replies", json={"apply_template": False, **body})
    assert response.status_code == 202, response.text
    return response.json()


def addresses(header) -> list[str]:
    return [a.addr_spec for a in header.addresses] if header is not None else []


def wait_for_count(api, conversation_id: str, count: int) -> dict:
    return wait_for_json(
        api,
        f"/v1/conversations/{conversation_id}",
        lambda c: c["message_count"] == count,
        what=f"{count} messages in the conversation",
    )


def wait_for_participants(api, conversation_id: str, count: int) -> dict:
    """The conversation once its participants are recorded (a moment after its message is counted)."""
    return wait_for_json(
        api,
        f"/v1/conversations/{conversation_id}",
        lambda c: len(c["participants"]) >= count,
        what=f"{count} participants",
    )


def test_cc_participants_reply_all_warnings_and_a_cc_reply_threads_in(system: System):
    account, api = new_account(system, "People")
    owner = "help@people.test"
    stream = new_stream(api, owner)
    first = mail(
        "Ann Customer <ann@example.net>",
        [owner, "Carl Colleague <carl@example.com>"],
        "Invoice 77 is wrong",
        "The invoice shows the wrong VAT number.",
        cc=["dora@example.org", owner],
    )
    with EventListener(system, account["api_key"]) as events:
        smtp_send(system, first, mail_from="ann@example.net", rcpt=stream["forwarding_address"])
        conversation = wait_for_conversation(api, stream["id"], "Invoice 77 is wrong")
        _, changed = events.wait_for(
            lambda name, data: name == "conversation.changed" and data.get("participants"),
            what="conversation.changed with the participants",
        )
        _, received = events.wait_for(lambda name, data: name == "message.received", what="message.received")
    assert changed["participants"] == ["ann@example.net", "carl@example.com", "dora@example.org"]
    assert changed["changed_by"] == "system"
    assert received["thread_reason"] == "new"
    conversation = wait_for_participants(api, conversation["id"], 3)
    assert conversation["participants"] == ["ann@example.net", "carl@example.com", "dora@example.org"]
    [inbound] = messages_of(api, conversation["id"])
    assert inbound["thread_reason"] == "new"

    # Default reply: reply-all minus our own addresses, the customer on To; the response says so.
    queued = post_reply(api, conversation["id"], text="We are correcting invoice 77.")
    assert queued["recipients"]["to"] == [{"name": "Ann Customer", "address": "ann@example.net"}]
    assert [a["address"] for a in queued["recipients"]["cc"]] == ["carl@example.com", "dora@example.org"]
    assert queued["recipients"]["bcc"] == [] and queued["warnings"] == []
    sent = wait_for_sent(api, conversation["id"], queued["message_id"])
    [out] = relay_mail_to(system, "ann@example.net")
    assert addresses(out["Cc"]) == ["carl@example.com", "dora@example.org"]
    assert out["Message-ID"] == sent["message_id_header"] and out["Message-ID"].startswith("<ms-")
    [reply_to] = addresses(out["Reply-To"])
    local, _, domain = reply_to.partition("@")
    assert local.startswith(stream["forwarding_address"].partition("@")[0] + "+ms-")
    assert domain == stream["forwarding_address"].partition("@")[2]
    assert out["Message-ID"][4:16] == local.rpartition("+ms-")[2]  # one token, two carriers

    # A third party added by hand is sent to, and named in a warning.
    queued = post_reply(
        api, conversation["id"], text="Copying our accountant.", bcc=[{"address": "eve@accounting.example"}]
    )
    assert queued["warnings"] == ["bcc eve@accounting.example is not a participant of this conversation"]
    assert queued["recipients"]["bcc"] == [{"name": "", "address": "eve@accounting.example"}]
    wait_for_sent(api, conversation["id"], queued["message_id"])
    [dump] = [d for d in relay_dumps(system) if b"Copying our accountant." in d]
    envelope = b"\n".join(line for line in dump.splitlines() if line.startswith(b"X-Rcpt-Args:"))
    assert b"eve@accounting.example" in envelope
    assert b"eve@accounting.example" not in strip_sink_headers(dump)  # Bcc never in a header

    # Carl answers with reply-all from his client: to our Reply-To, Ann on Cc, threaded on our reply.
    answer = mail(
        "Carl Colleague <carl@example.com>",
        [reply_to],
        f"Re: {out['Subject']}",
        "The correct VAT number is DE123.",
        cc=["ann@example.net", "dora@example.org"],
        in_reply_to=out["Message-ID"],
        references=out["Message-ID"],
    )
    smtp_send(system, answer, mail_from="carl@example.com", rcpt=reply_to)
    wait_for_count(api, conversation["id"], 4)
    assert [c["id"] for c in conversations_of(api, stream["id"])] == [conversation["id"]]
    carl = messages_of(api, conversation["id"])[-1]
    assert carl["from"]["address"] == "carl@example.com"
    assert carl["thread_reason"] == "in_reply_to"

    # Carl wrote last: reply-all now puts him on To next to the customer.
    queued = post_reply(api, conversation["id"], text="Thanks Carl, fixed.")
    assert [a["address"] for a in queued["recipients"]["to"]] == ["ann@example.net", "carl@example.com"]
    assert [a["address"] for a in queued["recipients"]["cc"]] == ["dora@example.org"]
    assert queued["warnings"] == []
    wait_for_sent(api, conversation["id"], queued["message_id"])

    # Carl writes again through the brand address from a client that dropped every reply header: he is a
    # participant, so the subject and sender rule takes him in (a stranger with that subject would not be).
    again = mail("Carl <carl@example.com>", [owner], "RE: Invoice 77 is wrong", "Attached the VAT certificate.")
    smtp_send(system, again, mail_from="carl@example.com", rcpt=stream["forwarding_address"])
    wait_for_count(api, conversation["id"], 6)
    assert messages_of(api, conversation["id"])[-1]["thread_reason"] == "subject_and_sender"
    stranger = mail("<mallory@example.net>", [owner], "RE: Invoice 77 is wrong", "Me too?")
    smtp_send(system, stranger, mail_from="mallory@example.net", rcpt=stream["forwarding_address"])

    def two_conversations():
        found = [c for c in conversations_of(api, stream["id"]) if c["message_count"] >= 1]
        return found if len(found) == 2 else None

    found = wait_for_sync(two_conversations, timeout=30, what="the stranger's own conversation")
    assert {c["customer"]["address"] for c in found} == {"ann@example.net", "mallory@example.net"}


def first_reply_of(system: System, api, stream: dict, customer: str, subject: str) -> tuple[dict, EmailMessage]:
    smtp_send(
        system,
        mail(f"<{customer}>", [stream["address"]], subject, "Where is my parcel?"),
        mail_from=customer,
        rcpt=stream["forwarding_address"],
    )
    conversation = wait_for_conversation(api, stream["id"], subject)
    queued = post_reply(api, conversation["id"], text="It is on its way.")
    wait_for_sent(api, conversation["id"], queued["message_id"])
    [out] = relay_mail_to(system, customer)
    return conversation, out


def test_outlook_reply_without_references_threads_by_the_token_and_never_across_streams(system: System):
    _, api = new_account(system, "Outlook")
    stream = new_stream(api, "care@outlook-people.test")
    conversation, out = first_reply_of(system, api, stream, "olga@example.net", "Parcel 5 late")
    [reply_to] = addresses(out["Reply-To"])

    # Outlook: no In-Reply-To, no References, and the customer rewrote the subject.
    outlook = mail("Olga <olga@example.net>", [reply_to], "RE: still nothing arrived!!", "Still waiting.")
    smtp_send(system, outlook, mail_from="olga@example.net", rcpt=reply_to)
    wait_for_count(api, conversation["id"], 3)
    assert messages_of(api, conversation["id"])[-1]["thread_reason"] == "reply_token"
    assert [c["id"] for c in conversations_of(api, stream["id"])] == [conversation["id"]]

    # Through the brand's forwarding (To: the brand address), references dropped: the subject and sender rule.
    forwarded = mail("Olga <olga@example.net>", [stream["address"]], f"RE: {out['Subject']}", "Hello again?")
    smtp_send(system, forwarded, mail_from="olga@example.net", rcpt=stream["forwarding_address"])
    wait_for_count(api, conversation["id"], 4)
    assert messages_of(api, conversation["id"])[-1]["thread_reason"] == "subject_and_sender"

    # The same token sent to another stream (another account's) opens a conversation there, never joins this one.
    _, other_api = new_account(system, "Other tenant")
    other = new_stream(other_api, "desk@other-people.test")
    token = reply_to.partition("+ms-")[2].partition("@")[0]
    tagged = (
        f"{other['forwarding_address'].partition('@')[0]}+ms-{token}@{other['forwarding_address'].partition('@')[2]}"
    )
    smtp_send(
        system,
        mail(
            "Olga <olga@example.net>",
            [tagged],
            "RE: still nothing arrived!!",
            "Wrong door.",
            in_reply_to=out["Message-ID"],
        ),
        mail_from="olga@example.net",
        rcpt=tagged,
    )
    elsewhere = wait_for_conversation(other_api, other["id"], "still nothing arrived!!")
    assert messages_of(other_api, elsewhere["id"])[0]["thread_reason"] == "new"
    assert wait_for_count(api, conversation["id"], 4)["message_count"] == 4


def test_two_strangers_answering_one_newsletter_get_two_conversations(system: System):
    _, api = new_account(system, "Newsletter")
    owner = "news@letter-people.test"
    stream = new_stream(api, owner)
    newsletter_id = make_msgid(domain="esp.letter-people.test")
    for person in ("pia@example.net", "quinn@example.org"):
        answer = mail(
            f"<{person}>",
            [owner],
            "Re: Our November news",
            f"Unsubscribe me please ({person}).",
            in_reply_to=newsletter_id,
            references=newsletter_id,
        )
        smtp_send(system, answer, mail_from=person, rcpt=stream["forwarding_address"])

    def two():
        found = [c for c in conversations_of(api, stream["id"]) if c["message_count"] >= 1]
        return found if len(found) == 2 else None

    found = wait_for_sync(two, timeout=30, what="two conversations")
    assert sorted(c["customer"]["address"] for c in found) == ["pia@example.net", "quinn@example.org"]
    for conversation in found:
        [message] = messages_of(api, conversation["id"])
        assert message["thread_reason"] == "new"
        with_people = wait_for_participants(api, conversation["id"], 1)
        assert with_people["participants"] == [conversation["customer"]["address"]]


def test_forward_as_attachment_shows_the_customers_words_and_the_note_apart(system: System):
    _, api = new_account(system, "Attached")
    owner = "team@attached-people.test"
    stream = new_stream(api, owner)
    original = mail("Dana Delivery <dana@customer.example>", [owner], "Damaged delivery", "The box was crushed.")
    forward = EmailMessage()
    forward["From"] = f"Acme Team <{owner}>"
    forward["To"] = stream["forwarding_address"]
    forward["Cc"] = "boss@attached-people.test"
    forward["Subject"] = "FW: Damaged delivery"
    forward["Message-ID"] = make_msgid(domain="attached-people.test")
    forward.set_content("See attached, please handle.")
    forward.add_attachment(original)  # message/rfc822
    smtp_send(system, forward, mail_from=owner, rcpt=stream["forwarding_address"])

    conversation = wait_for_conversation(api, stream["id"], "Damaged delivery")
    assert conversation["customer"]["address"] == "dana@customer.example"
    [message] = messages_of(api, conversation["id"])
    assert message["text"].strip() == "The box was crushed."
    assert message["forwarded"]["method"] == "forward_attached"
    assert message["forwarded"]["note"] == "See attached, please handle."
    # The forwarder's Cc (an internal colleague) is not a participant, and a default reply goes to Dana only.
    assert wait_for_participants(api, conversation["id"], 1)["participants"] == ["dana@customer.example"]
    queued = post_reply(api, conversation["id"], text="A new one is on its way.")
    assert queued["recipients"] == {
        "to": [{"name": "Dana Delivery", "address": "dana@customer.example"}],
        "cc": [],
        "bcc": [],
    }
