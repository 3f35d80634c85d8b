"""How mail reaches a stream when the brand forwards it, end to end through the real processes:

- a mail the mailbox owner forwarded inline from Gmail belongs to the original sender, and the reply goes to them;
  the customer's answer to that reply joins the same conversation;
- Gmail's forwarding-confirmation mail shows its code and link on the stream and opens no conversation;
- Mailstream's own forwarding check, played back as the provider's redirect, marks the stream verified;
- a deleted stream's forwarding address is refused at SMTP time.
"""

import smtplib
from collections.abc import Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

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
    reply,
    sink_envelope,
    smtp_send,
    strip_sink_headers,
    text_of,
    wait_for_conversation,
)
from tests.support.backends import Backends
from tests.support.waiting import wait_for_sync

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def system(backends: Backends, tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    with running_system(
        backends, tmp_path_factory, "forwarding", {"INGEST_AUTH_ENABLED": "false", **LIVE_ENV}
    ) as running:
        yield running


def gmail_inline_forward(owner: str, forwarding_address: str, customer: tuple[str, str], subject: str) -> EmailMessage:
    """A mail as Gmail writes it when the owner clicks "Forward": their note, then the quoted header block."""
    name, address = customer
    mail = EmailMessage()
    mail["From"] = f"Acme Support <{owner}>"
    mail["To"] = forwarding_address
    mail["Subject"] = f"Fwd: {subject}"
    mail["Date"] = format_datetime(datetime.now(UTC))
    mail["Message-ID"] = make_msgid(domain="mail.gmail.com")
    mail["MIME-Version"] = "1.0"
    text = (
        "Forwarding this one to the inbox.\n\n"
        "---------- Forwarded message ---------\n"
        f"From: {name} <{address}>\n"
        "Date: Thu, Nov 26, 2026 at 10:15 PM\n"
        f"Subject: {subject}\n"
        f"To: <{owner}>\n\n\n"
        "Hello, the zipper of my new bag broke after two days.\nCan I get a replacement?\n\nRin\n"
    )
    html = (
        '<div dir="ltr">Forwarding this one to the inbox.<br><br><div class="gmail_quote">'
        '<div dir="ltr" class="gmail_attr">---------- Forwarded message ---------<br>'
        f'From: <strong class="gmail_sendername" dir="auto">{name}</strong> '
        f'<span dir="auto">&lt;<a href="mailto:{address}">{address}</a>&gt;</span><br>'
        "Date: Thu, Nov 26, 2026 at 10:15 PM<br>"
        f"Subject: {subject}<br>"
        f'To: &lt;<a href="mailto:{owner}">{owner}</a>&gt;<br></div><br><br>'
        '<div dir="ltr">Hello, the zipper of my new bag broke after two days.<br>Can I get a replacement?<br><br>'
        "Rin</div></div></div>\n"
    )
    mail.set_content(text)
    mail.add_alternative(html, subtype="html")
    return mail


def gmail_forwarding_confirmation(owner: str, forwarding_address: str, code: str, link: str) -> EmailMessage:
    """Gmail's "(#code) Gmail Forwarding Confirmation" mail to the address the owner wants to forward to."""
    mail = EmailMessage()
    mail["From"] = "Gmail Team <forwarding-noreply@google.com>"
    mail["To"] = forwarding_address
    mail["Subject"] = f"(#{code}) Gmail Forwarding Confirmation - Receive Mail from {owner}"
    mail["Message-ID"] = make_msgid(domain="google.com")
    mail.set_content(
        f"{owner} has requested to automatically forward mail to your email\n"
        f"address {forwarding_address}.\n\n"
        f"Confirmation code: {code}\n\n"
        f"To allow {owner} to automatically forward mail to your address,\n"
        "please click the link below to confirm the request:\n\n"
        f"{link}\n\n"
        "If you click the link and it appears to be broken, please copy and paste it\n"
        "into a new browser window. If you aren't able to access the link, you can\n"
        f"send the confirmation code {code} to {owner}.\n\n"
        "Thanks for using Gmail!\n\nSincerely,\n\nThe Gmail Team\n"
    )
    return mail


def test_gmail_inline_forward_belongs_to_the_original_sender_and_the_answer_joins_it(system: System):
    _, api = new_account(system, "Forwarding owner")
    owner = "support@zipper.test"
    stream = new_stream(api, owner)
    subject = "Broken zipper"
    forwarded = gmail_inline_forward(owner, stream["forwarding_address"], ("Rin Customer", "rin@example.org"), subject)
    smtp_send(system, forwarded, mail_from=owner, rcpt=stream["forwarding_address"])

    conversation = wait_for_conversation(api, stream["id"], subject)  # "Fwd:" is not part of the subject
    assert conversation["customer"]["address"] == "rin@example.org"
    assert conversation["customer"]["name"] == "Rin Customer"
    [inbound] = messages_of(api, conversation["id"])
    assert inbound["forwarded"] is not None
    assert inbound["forwarded"]["original_from"]["address"] == "rin@example.org"
    assert inbound["forwarded"]["by"]["address"] == owner

    sent = reply(api, conversation["id"], "We are sending a new bag today.")
    [out] = relay_mail_to(system, "rin@example.org")
    assert [a.addr_spec for a in out["To"].addresses] == ["rin@example.org"]
    assert out["From"].addresses[0].addr_spec == owner
    assert out["Message-ID"] == sent["message_id_header"]
    assert "new bag today" in text_of(out)
    assert not relay_mail_to(system, owner)  # the owner who forwarded it is not the customer

    # (d) The customer answers our reply; it reaches the stream's address and is redirected to Mailstream.
    answer = EmailMessage()
    answer["From"] = "Rin Customer <rin@example.org>"
    answer["To"] = owner
    answer["Subject"] = f"Re: {out['Subject']}"
    answer["Message-ID"] = make_msgid(domain="example.org")
    answer["In-Reply-To"] = out["Message-ID"]
    answer["References"] = out["Message-ID"]
    answer.set_content("Thank you! Which colour will it be?")
    smtp_send(system, answer, mail_from="rin@example.org", rcpt=stream["forwarding_address"])

    joined = wait_for_json(
        api,
        f"/v1/conversations/{conversation['id']}",
        lambda c: c["message_count"] == 3,
        what="the answer in the same conversation",
    )
    assert joined["customer"]["address"] == "rin@example.org"
    assert [c["id"] for c in conversations_of(api, stream["id"])] == [conversation["id"]]
    messages = messages_of(api, conversation["id"])
    assert [m["direction"] for m in messages] == ["inbound", "outbound", "inbound"]
    assert messages[2]["message_id_header"] == answer["Message-ID"]
    assert "Which colour" in messages[2]["text"]


def test_a_customers_quick_follow_ups_all_join_and_are_all_listed(system: System):
    """Customers often send a few answers in a row; each is stored and the conversation lists every one of them.

    The store consumer handles mails side by side (prefetch), so the follow-ups are folded into one conversation
    at the same moment; every `message.received` event names the conversation, and the conversation must list
    exactly the messages those events announced."""
    account, api = new_account(system, "Follow-ups")
    owner = "desk@followups.test"
    stream = new_stream(api, owner)
    first = EmailMessage()
    first["From"] = "Mio Customer <mio@example.org>"
    first["To"] = owner
    first["Subject"] = "Order 900 missing"
    first["Message-ID"] = make_msgid(domain="example.org")
    first.set_content("My order 900 did not arrive.")
    smtp_send(system, first, mail_from="mio@example.org", rcpt=stream["forwarding_address"])
    conversation = wait_for_conversation(api, stream["id"], "Order 900 missing")

    with EventListener(system, account["api_key"]) as events:
        follow_ups = []
        for number in range(1, 5):
            answer = EmailMessage()
            answer["From"] = "Mio Customer <mio@example.org>"
            answer["To"] = owner
            answer["Subject"] = "Re: Order 900 missing"
            answer["Message-ID"] = make_msgid(domain="example.org")
            answer["In-Reply-To"] = first["Message-ID"]
            answer["References"] = first["Message-ID"]
            answer.set_content(f"Follow-up number {number}.")
            follow_ups.append(answer)
        with smtplib.SMTP("127.0.0.1", system.smtp_port, timeout=30) as smtp:
            for answer in follow_ups:
                assert (
                    smtp.send_message(answer, from_addr="mio@example.org", to_addrs=[stream["forwarding_address"]])
                    == {}
                )

        def all_announced():
            announced = [d for n, d in events.events if n == "message.received"]
            return announced if len(announced) >= len(follow_ups) else None

        announced = wait_for_sync(all_announced, timeout=30, what="message.received for every follow-up")

    assert {d["conversation_id"] for d in announced} == {conversation["id"]}
    announced_ids = {d["message_id"] for d in announced}
    listed = messages_of(api, conversation["id"])
    missing = announced_ids - {m["id"] for m in listed}
    assert not missing, f"stored and announced, but not listed in the conversation: {sorted(missing)}"
    assert sorted(m["text"].strip() for m in listed[1:]) == [f"Follow-up number {n}." for n in range(1, 5)]
    assert api.get(f"/v1/conversations/{conversation['id']}").json()["message_count"] == 5


def test_gmail_forwarding_confirmation_shows_on_the_stream_and_opens_no_conversation(system: System):
    _, api = new_account(system, "Confirmation owner")
    owner = "help@confirm.test"
    stream = new_stream(api, owner)
    assert stream["provider_confirmation"] is None
    link = "https://mail-settings.google.com/mail/vf-%5BANGjdJ8xYz%5D-Q2xhcmsAbCdEf0123"
    mail = gmail_forwarding_confirmation(owner, stream["forwarding_address"], "482917365", link)
    smtp_send(system, mail, mail_from="forwarding-noreply@google.com", rcpt=stream["forwarding_address"])

    seen = wait_for_json(
        api, f"/v1/streams/{stream['id']}", lambda s: s["provider_confirmation"], what="the provider confirmation"
    )
    confirmation = seen["provider_confirmation"]
    assert confirmation["provider"] == "gmail"
    assert confirmation["code"] == "482917365"
    assert confirmation["link"] == link
    assert confirmation["requested_by"] == owner
    # Recorded on the stream (the store's last step for such a mail): a conversation would exist by now.
    assert conversations_of(api, stream["id"]) == []
    assert api.get("/v1/conversations").json()["items"] == []


def test_forwarding_check_played_back_as_a_redirect_verifies_the_stream(system: System):
    _, api = new_account(system, "Redirect owner")
    owner = "care@redirect.test"
    stream = new_stream(api, owner)
    assert stream["forwarding_verified"] is False

    requested = api.post(f"/v1/streams/{stream['id']}/verify-forwarding")
    assert requested.status_code == 202, requested.text
    assert requested.json()["sent_to"] == owner
    assert wait_for_json(api, f"/v1/streams/{stream['id']}", lambda s: s["forwarding_check"]["pending"])

    def check_mail():
        found = [d for d in relay_dumps(system) if owner in sink_envelope(d, b"X-Rcpt-Args")]
        return found[0] if found else None

    dump = wait_for_sync(check_mail, timeout=30, what="the forwarding check mail at the relay")
    check = strip_sink_headers(dump)
    envelope_from = sink_envelope(dump, b"X-Mail-Args").partition("<")[2].partition(">")[0]
    # The provider's redirect: the same bytes, same envelope sender, to the forwarding address.
    smtp_send(system, check, mail_from=envelope_from, rcpt=stream["forwarding_address"])

    verified = wait_for_json(
        api, f"/v1/streams/{stream['id']}", lambda s: s["forwarding_verified"], what="forwarding verified"
    )
    assert verified["forwarding_check"]["verified"] is True
    assert verified["forwarding_check"]["pending"] is False
    assert conversations_of(api, stream["id"]) == []
    assert verified["forwarding_check"]["method"] == "redirect", verified["forwarding_check"]


def test_mail_to_a_deleted_streams_forwarding_address_is_refused_at_smtp_time(system: System):
    _, api = new_account(system, "Deleting owner")
    stream = new_stream(api, "old@gone.test")
    address = stream["forwarding_address"]

    def rcpt_reply() -> tuple[int, bytes]:
        with smtplib.SMTP("127.0.0.1", system.smtp_port, timeout=30) as smtp:
            smtp.ehlo("client.example.net")
            smtp.mail("late@example.net")
            return smtp.rcpt(address)

    assert rcpt_reply()[0] == 250  # live: accepted
    assert api.delete(f"/v1/streams/{stream['id']}").status_code == 204
    assert api.get(f"/v1/streams/{stream['id']}").status_code == 404

    # The deletion reaches ingest's recipient cache through stream.changed; wait for that, not for the clock.
    def refused_reply() -> tuple[int, bytes] | None:
        answer = rcpt_reply()
        return answer if answer[0] != 250 else None

    code, text = wait_for_sync(refused_reply, timeout=10, what="RCPT refused after the delete")
    assert code == 550, text

    mail = EmailMessage()
    mail["From"] = "late@example.net"
    mail["To"] = "old@gone.test"
    mail["Subject"] = "Anyone there?"
    mail.set_content("Hello?")
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        smtp_send(system, mail, mail_from="late@example.net", rcpt=address)
    assert refused.value.recipients[address][0] == 550
