"""The reply consumer against the real broker, database and an SMTP relay: what reaches the relay, what is
reported back, retries, refusals and exactly-once behaviour."""

import itertools
import time
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy

import pytest

from mailstream_common.contracts import EmailTemplate, utcnow
from mailstream_common.verp import decode_bounce_address, encode_bounce_address
from mailstream_sender.repositories.deliveries import DELIVERIES, Deliveries
from mailstream_sender.repositories.mails import Mails
from mailstream_sender.repositories.suppressions import Suppressions
from tests.sender.conftest import BOUNCE_DOMAIN, VERP, add_stream, reply_command
from tests.support.smtp_sink import PostfixSink
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration


async def test_reply_is_built_signed_delivered_and_reported(sender_factory, mongo_db, relay, acme_key, dkim_dns):
    harness = await sender_factory()
    stream = await add_stream(mongo_db, acme_key.account_id, display_name="アクメ サポート")
    command = reply_command(
        acme_key.account_id,
        stream["_id"],
        to=[{"name": "山田 花子", "address": "Hanako@Example.jp"}],
        subject="注文の件",
        references=["<root@mail.example.jp>"],
        in_reply_to="<original-1@mail.example.jp>",
    )
    await harness.send(command)
    report = await until(lambda: harness.final_report(command.message_id), what="the sent report")

    [mail] = relay.messages()
    assert report.status == "sent" and report.account_id == acme_key.account_id
    assert report.relay_queue_id == mail.queue_id
    assert report.smtp_code == 250
    assert report.raw == mail.data  # the exact bytes the relay received
    assert "DKIM rsa-sha256 d=acme.test s=ms1" in report.detail
    assert decode_bounce_address(mail.mail_from, VERP.encode(), BOUNCE_DOMAIN) == command.message_id
    assert mail.rcpt_tos == ["hanako@example.jp"]

    msg = mail.message()
    assert msg["From"].addresses[0].display_name == "アクメ サポート"
    assert msg["From"].addresses[0].addr_spec == "support@acme.test"
    assert msg["To"].addresses[0].display_name == "山田 花子"
    assert msg["Subject"] == "Re: 注文の件"
    assert msg["Message-ID"] == command.message_id_header
    assert msg["In-Reply-To"] == "<original-1@mail.example.jp>"
    assert msg["References"].split() == ["<root@mail.example.jp>", "<original-1@mail.example.jp>"]
    assert dkim_dns.verify_with_dkimpy(mail.data) == [True]
    assert "result pass" in dkim_dns.verify_with_mail_dkim(mail.data)

    record = await Deliveries(mongo_db).get(command.message_id)
    assert record.state == "sent" and record.attempts == 1 and record.relay_queue_id == mail.queue_id


async def test_template_applied_and_skipped(sender_factory, mongo_db, relay, acme_key):
    harness = await sender_factory()
    stream = await add_stream(mongo_db, acme_key.account_id)
    template = EmailTemplate(html="<div class='brand'>{{ content }}</div>", text="{{ content }}\n-- \nAcme Team")
    with_template = reply_command(acme_key.account_id, stream["_id"], text="a < b", template=template)
    without = reply_command(acme_key.account_id, stream["_id"], text="plain one")
    await harness.send(with_template)
    await harness.send(without)
    await until(lambda: harness.final_report(with_template.message_id) and harness.final_report(without.message_id))

    by_id = {message_from_bytes(m.data, policy=policy.default)["Message-ID"]: m.message() for m in relay.messages()}
    templated = by_id[with_template.message_id_header]
    assert "<div class='brand'>a &lt; b</div>" in templated.get_body(("html",)).get_content()
    assert "-- \r\nAcme Team" in templated.get_body(("plain",)).get_content()
    plain = by_id[without.message_id_header]
    assert "brand" not in plain.get_body(("html",)).get_content()
    assert "Acme Team" not in plain.get_body(("plain",)).get_content()


async def test_domain_without_verified_key_sends_unsigned_and_says_so(sender_factory, mongo_db, relay, domains):
    harness = await sender_factory()
    stream = await add_stream(mongo_db, "acct-without-key")
    command = reply_command("acct-without-key", stream["_id"])
    await harness.send(command)
    report = await until(lambda: harness.final_report(command.message_id))
    assert report.status == "sent"
    assert "unsigned: acme.test has no verified DKIM key" in report.detail
    assert b"DKIM-Signature" not in relay.messages()[0].data


async def test_temporary_failure_is_retried_then_delivered_once(sender_factory, mongo_db, relay, acme_key):
    harness = await sender_factory()
    harness.sender.clock = _clock_moving_a_minute_per_call()
    stream = await add_stream(mongo_db, acme_key.account_id)
    relay.answer_next("451 4.3.0 Temporary local problem, try again in 1 second")
    command = reply_command(acme_key.account_id, stream["_id"])
    await harness.send(command)
    report = await until(lambda: harness.final_report(command.message_id), what="delivery after the retry")

    assert report.status == "sent" and report.attempt == 2
    statuses = [r.status for r in harness.reports_for(command.message_id)]
    assert statuses == ["deferred", "sent"]
    deferred = harness.reports_for(command.message_id)[0]
    assert deferred.smtp_code == 451 and "try again" in deferred.detail
    assert len(relay.messages()) == 1 and relay.attempts == 2
    assert (await Deliveries(mongo_db).get(command.message_id)).attempts == 2
    # The retry sent the bytes the first attempt built and stored, not a copy built again (with a later Date).
    assert relay.messages()[0].data == report.raw == (await Mails(mongo_db).get(command.message_id)).raw


async def test_permanent_failure_fails_at_once(sender_factory, mongo_db, relay, acme_key):
    harness = await sender_factory()
    stream = await add_stream(mongo_db, acme_key.account_id)
    relay.answer_next("550 5.1.1 <kana@example.net>: Recipient address rejected: User unknown")
    command = reply_command(acme_key.account_id, stream["_id"])
    await harness.send(command)
    report = await until(lambda: harness.final_report(command.message_id))
    assert report.status == "failed" and report.permanent and report.smtp_code == 550
    assert "User unknown" in report.detail
    assert report.raw is not None and b"DKIM-Signature" in report.raw
    # A later command proves the first is not being retried behind our back.
    follow_up = reply_command(acme_key.account_id, stream["_id"])
    await harness.send(follow_up)
    await until(lambda: harness.final_report(follow_up.message_id))
    assert relay.attempts == 2 and [r.status for r in harness.reports_for(command.message_id)] == ["failed"]


async def test_relay_down_then_back_delivers_exactly_once(sender_factory, mongo_db, relay, acme_key):
    harness = await sender_factory()
    stream = await add_stream(mongo_db, acme_key.account_id)
    relay.stop()
    command = reply_command(acme_key.account_id, stream["_id"])
    await harness.send(command)
    await until(lambda: harness.reports_for(command.message_id), what="a deferred report")
    deferred = harness.reports_for(command.message_id)[0]
    assert deferred.status == "deferred" and "unreachable" in deferred.detail
    relay.start()
    report = await until(lambda: harness.final_report(command.message_id), timeout=20, what="delivery after restart")
    assert report.status == "sent" and report.attempt >= 2
    assert len(relay.messages()) == 1


async def test_temporary_failures_past_the_maximum_age_fail(sender_factory, mongo_db, relay, acme_key):
    harness = await sender_factory(max_age_seconds=0)
    stream = await add_stream(mongo_db, acme_key.account_id)
    relay.answer_next("421 4.4.2 Service not available")
    command = reply_command(acme_key.account_id, stream["_id"])
    await harness.send(command)
    report = await until(lambda: harness.final_report(command.message_id))
    assert report.status == "failed" and "gave up after 1 attempts" in report.detail and report.smtp_code == 421
    assert report.failure_reason == "expired" and report.relay_reply.startswith("421")


async def test_domains_service_down_defers_then_sends_signed(sender_factory, mongo_db, relay, acme_key, domains):
    harness = await sender_factory()
    stream = await add_stream(mongo_db, acme_key.account_id)
    domains.status_override = 503
    command = reply_command(acme_key.account_id, stream["_id"])
    await harness.send(command)
    await until(lambda: harness.reports_for(command.message_id), what="a deferred report")
    assert "DKIM key not available" in harness.reports_for(command.message_id)[0].detail
    domains.status_override = None
    report = await until(lambda: harness.final_report(command.message_id))
    assert report.status == "sent" and b"DKIM-Signature" in relay.messages()[0].data


@pytest.mark.parametrize(
    ("stream_fields", "command_fields", "reason"),
    [
        ({"allow_agent_send": False}, {}, "does not allow agents to send"),
        ({"deleted": True}, {}, "does not exist"),
        ({}, {"from": {"name": "x", "address": "ceo@acme.test"}}, "is not the stream's address"),
        ({}, {"account_id": "another-account"}, "does not exist"),
        ({}, {"extra_headers": {"X-Bad": "a\r\nBcc: v@x.test"}}, "line break"),
    ],
)
async def test_guard_steps_refuse_with_a_recorded_reason(
    sender_factory, mongo_db, relay, acme_key, stream_fields, command_fields, reason
):
    harness = await sender_factory()
    stream = await add_stream(mongo_db, acme_key.account_id, **stream_fields)
    fields = dict(command_fields)
    command = reply_command(fields.pop("account_id", acme_key.account_id), stream["_id"], **fields)
    await harness.send(command)
    report = await until(lambda: harness.final_report(command.message_id))
    assert report.status == "failed" and report.permanent and reason in report.detail
    record = await Deliveries(mongo_db).get(command.message_id)
    assert record.state == "failed" and reason in record.detail
    assert relay.attempts == 0


async def test_forwarding_test_is_sent_from_its_own_address(sender_factory, mongo_db, relay):
    harness = await sender_factory()
    stream = await add_stream(mongo_db, "acct-fwd", allow_agent_send=False)
    command = reply_command(
        "acct-fwd",
        stream["_id"],
        kind="forwarding_test",
        to=[{"name": "", "address": stream["forwarding_address"]}],
        subject="Mailstream forwarding check",
        in_reply_to=None,
        references=[],
        **{"from": {"name": "Mailstream", "address": "check@in.mailstream.test"}},
    )
    await harness.send(command)
    report = await until(lambda: harness.final_report(command.message_id))
    assert report.status == "sent"
    msg = relay.messages()[0].message()
    assert msg["From"].addresses[0].addr_spec == "check@in.mailstream.test"
    assert msg["Subject"] == "Mailstream forwarding check"


async def test_suppressed_recipient_fails_at_once_with_the_reason(sender_factory, mongo_db, relay, acme_key):
    harness = await sender_factory()
    stream = await add_stream(mongo_db, acme_key.account_id)
    await Suppressions(mongo_db).suppress(acme_key.account_id, "Kana@example.net", "asked us to stop")
    command = reply_command(acme_key.account_id, stream["_id"])
    await harness.send(command)
    report = await until(lambda: harness.final_report(command.message_id))
    assert report.status == "failed"
    assert "kana@example.net is on the suppression list (asked us to stop)" in report.detail
    assert relay.attempts == 0


async def test_redelivered_command_after_sent_is_reported_not_resent(sender_factory, mongo_db, relay, acme_key):
    harness = await sender_factory()
    stream = await add_stream(mongo_db, acme_key.account_id)
    command = reply_command(acme_key.account_id, stream["_id"])
    await harness.send(command)
    first = await until(lambda: harness.final_report(command.message_id))
    await harness.send(command)  # as the broker would after a crash before the ack
    await until(lambda: len(harness.reports_for(command.message_id)) == 2, what="the re-published report")
    again = harness.reports_for(command.message_id)[1]
    assert again.status == "sent" and again.relay_queue_id == first.relay_queue_id and again.raw == first.raw
    assert len(relay.messages()) == 1
    # The bytes are read back from `sender_mails`: the record, updated twice per mail, stays small.
    record = await mongo_db[DELIVERIES].find_one({"_id": command.message_id})
    assert "raw" not in record and record["raw_kept"] is True
    assert (await Mails(mongo_db).get(command.message_id)).raw == first.raw


def _clock_moving_a_minute_per_call():
    """A Date header per composition that differs from any other: a mail built twice would not be identical."""
    minutes = itertools.count()
    return lambda: utcnow() + timedelta(minutes=next(minutes))


async def test_a_retry_after_a_crash_resends_the_stored_bytes_unchanged(sender_factory, mongo_db, relay, acme_key):
    """The window exactly-once cannot close (the relay took the mail, the worker died before recording `sent`):
    the redelivered command sends the mail again, byte for byte the stored one, not a newly built and signed copy
    (which would carry another Date and signature)."""
    harness = await sender_factory()
    harness.sender.clock = _clock_moving_a_minute_per_call()
    stream = await add_stream(mongo_db, acme_key.account_id)
    record_outcome = harness.sender.deliveries.finish
    crashed: list[str] = []

    async def die_before_the_first_sent_is_recorded(message_id, account_id, recipients, state, **fields):
        if state == "sent" and not crashed:
            crashed.append(message_id)
            raise ConnectionError("worker died after the relay's 250")
        return await record_outcome(message_id, account_id, recipients, state, **fields)

    harness.sender.deliveries.finish = die_before_the_first_sent_is_recorded
    command = reply_command(acme_key.account_id, stream["_id"])
    await harness.send(command)
    report = await until(lambda: harness.final_report(command.message_id), what="the redelivered command's report")

    assert crashed == [command.message_id]
    first, second = relay.messages()
    assert first.data == second.data == report.raw
    assert (await Mails(mongo_db).get(command.message_id)).raw == first.data
    record = await Deliveries(mongo_db).get(command.message_id)
    assert record.state == "sent" and record.attempts == 2 and record.relay_queue_id == second.queue_id


async def until(condition, *, timeout: float = 15.0, what: str = ""):
    """Wait until the synchronous `condition()` is truthy (reports arrive from the consumer in this loop)."""

    async def probe():
        return condition()

    return await wait_for(probe, timeout=timeout, what=what)


async def test_delivered_through_postfix_smtp_sink_and_verifiable_from_its_dump(
    sender_factory, mongo_db, acme_key, dkim_dns
):
    """The same path against Postfix's own smtp-sink, which writes each mail it accepts to a file."""
    sink = PostfixSink().start()
    try:
        harness = await sender_factory(relay_port=sink.port)
        stream = await add_stream(mongo_db, acme_key.account_id)
        command = reply_command(acme_key.account_id, stream["_id"], subject="配送について")
        await harness.send(command)
        report = await until(lambda: harness.final_report(command.message_id), what="sent via smtp-sink")
        assert report.status == "sent", report.detail
        [dump] = await until(sink.dumps, what="smtp-sink's dump file")
    finally:
        sink.stop()  # the dump was read before: stop() removes the directory
    # smtp-sink prepends its own X-* envelope lines and a Received header, then writes the message as received.
    verp = encode_bounce_address(command.message_id, VERP.encode(), BOUNCE_DOMAIN)
    assert f"X-Mail-Args: <{verp}>".encode() in dump
    message = dump[dump.index(b"DKIM-Signature:") :]
    assert message.replace(b"\r\n", b"\n").rstrip(b"\n") == report.raw.replace(b"\r\n", b"\n").rstrip(b"\n")
    assert dkim_dns.verify_with_dkimpy(dump) == [True]
    assert "result pass" in dkim_dns.verify_with_mail_dkim(dump)
    assert message_from_bytes(message, policy=policy.default)["Subject"] == "Re: 配送について"


async def test_a_suppression_written_elsewhere_applies_within_the_cache_lifetime(
    sender_factory, mongo_db, relay, acme_key
):
    """Another replica's suppression does not reach this worker's cached list by event: it applies once the list
    expires (`SENDER_SUPPRESSION_CACHE_SECONDS`, 1 s here), the documented window."""
    harness = await sender_factory(suppression_cache_seconds=1.0)
    stream = await add_stream(mongo_db, acme_key.account_id)
    warm_up = reply_command(acme_key.account_id, stream["_id"])
    await harness.send(warm_up)
    assert (await until(lambda: harness.final_report(warm_up.message_id))).status == "sent"

    await Suppressions(mongo_db).suppress(acme_key.account_id, "kana@example.net", "complained elsewhere")
    written = time.monotonic()

    async def next_mail_refused():
        command = reply_command(acme_key.account_id, stream["_id"])
        await harness.send(command)
        report = await until(lambda: harness.final_report(command.message_id), what="the next mail's outcome")
        return report.status == "failed" and "complained elsewhere" in report.detail

    await wait_for(next_mail_refused, timeout=20, interval=0.2, what="a mail refused by the new suppression")
    # Refused once the list expired: well within the lifetime plus one mail's handling on a loaded machine.
    assert time.monotonic() - written < 1.0 + 10


@pytest.mark.integration
async def test_a_sent_mail_and_its_record_get_their_expiries(sender_factory, mongo_db, acme_key):
    harness = await sender_factory(retention_hours=72, max_age_seconds=600)
    stream = await add_stream(mongo_db, acme_key.account_id)
    command = reply_command(acme_key.account_id, stream["_id"])
    await harness.send(command)
    await until(lambda: harness.final_report(command.message_id), what="the mail sent")
    record = await mongo_db[DELIVERIES].find_one({"_id": command.message_id})
    mail = await Mails(mongo_db).collection.find_one({"_id": command.message_id})
    # Set from the sender's clock, a moment apart from the stamps the repository writes.
    assert abs(record["expires_at"] - record["updated_at"] - timedelta(hours=72)) < timedelta(seconds=30)
    assert abs(mail["expires_at"] - mail["created_at"] - timedelta(hours=72 + 1 + 600 / 3600)) < timedelta(seconds=30)
    assert mail["expires_at"] > record["expires_at"]


@pytest.mark.integration
async def test_a_command_older_than_the_retention_is_refused_unless_its_record_says_it_was_sent(
    sender_factory, mongo_db, relay, acme_key
):
    """Its record may have expired, so "no record" no longer means "never sent": it is not sent. While the record
    of a sent one exists, a late copy is still only re-reported."""
    harness = await sender_factory(retention_hours=72)
    stream = await add_stream(mongo_db, acme_key.account_id)
    long_ago = datetime.now(UTC) - timedelta(hours=73)

    sent = reply_command(acme_key.account_id, stream["_id"])
    await harness.send(sent)
    first = await until(lambda: harness.final_report(sent.message_id), what="the first copy sent")
    late_copy = sent.model_copy(update={"occurred_at": long_ago})
    await harness.send(late_copy)
    await until(lambda: len(harness.reports_for(sent.message_id)) == 2, what="the late copy re-reported")
    assert harness.reports_for(sent.message_id)[1].relay_queue_id == first.relay_queue_id

    stale = reply_command(acme_key.account_id, stream["_id"], occurred_at=long_ago)
    await harness.send(stale)
    report = await until(lambda: harness.final_report(stale.message_id), what="the stale command refused")
    assert report.status == "failed" and report.permanent
    assert "older than the delivery records are kept (72 h)" in report.detail
    assert len(relay.messages()) == 1  # only the first command ever reached the relay


async def test_each_report_says_what_the_relay_answered_and_when_the_next_attempt_is(
    sender_factory, mongo_db, relay, acme_key
):
    harness = await sender_factory()
    stream = await add_stream(mongo_db, acme_key.account_id)
    relay.answer_next("451 4.3.0 Temporary local problem")
    command = reply_command(acme_key.account_id, stream["_id"])
    before = utcnow()
    await harness.send(command)
    sent = await until(lambda: harness.final_report(command.message_id), what="delivery after the retry")

    deferred = harness.reports_for(command.message_id)[0]
    assert deferred.status == "deferred" and deferred.relay_reply == "451 4.3.0 Temporary local problem"
    # On a rung of the queue's retry ladder (1 s or 2 s here), counted from the attempt.
    assert before + timedelta(seconds=1) <= deferred.next_attempt_at <= utcnow() + timedelta(seconds=2)
    [mail] = relay.messages()
    assert sent.relay_reply.startswith("250") and mail.queue_id in sent.relay_reply
    assert sent.relay_queue_id == mail.queue_id and sent.failure_reason is None


@pytest.mark.parametrize(
    ("answer", "reason"), [("550 5.1.1 <kana@example.net>: User unknown", "rejected"), (None, "suppressed")]
)
async def test_a_failure_names_its_reason(sender_factory, mongo_db, relay, acme_key, answer, reason):
    harness = await sender_factory()
    stream = await add_stream(mongo_db, acme_key.account_id)
    if answer:
        relay.answer_next(answer)
    else:
        await Suppressions(mongo_db).suppress(acme_key.account_id, "kana@example.net", "asked us to stop")
    command = reply_command(acme_key.account_id, stream["_id"])
    await harness.send(command)
    report = await until(lambda: harness.final_report(command.message_id))
    assert (report.status, report.failure_reason) == ("failed", reason)
    assert (report.relay_reply is not None) == (answer is not None)


async def test_a_retry_round_sends_the_stored_bytes_once_and_an_old_rounds_command_sends_nothing(
    sender_factory, mongo_db, relay, acme_key
):
    harness = await sender_factory()
    stream = await add_stream(mongo_db, acme_key.account_id)
    relay.answer_next("550 5.7.1 Not today")
    command = reply_command(acme_key.account_id, stream["_id"])
    await harness.send(command)
    failed = await until(lambda: harness.final_report(command.message_id))
    assert failed.status == "failed" and failed.retry_round == 0

    # Inbox's retry: the same message in round 1; then its command again (redelivered after a crash, say).
    retry = command.model_copy(update={"retry_round": 1, "event_id": "retry-1"})
    await harness.send(retry)
    await until(lambda: len(harness.reports_for(command.message_id)) == 2, what="the retry's report")
    await harness.send(retry)
    await until(
        lambda: [r.status for r in harness.reports_for(command.message_id)] == ["failed", "sent", "sent"],
        what="the redelivered retry's re-report",
    )
    # The round-0 command redelivered late changes and sends nothing.
    await harness.send(command)
    follow_up = reply_command(acme_key.account_id, stream["_id"])
    await harness.send(follow_up)
    await until(lambda: harness.final_report(follow_up.message_id), what="a later command, to know the queue moved")

    sent = harness.reports_for(command.message_id)[1]
    assert sent.retry_round == 1 and sent.raw == failed.raw  # the bytes the first round built, not a new copy
    retried = [m for m in relay.messages() if m.message()["Message-ID"] == command.message_id_header]
    assert len(retried) == 1 and retried[0].data == failed.raw
    record = await Deliveries(mongo_db).get(command.message_id)
    assert (record.state, record.retry_round, record.attempts) == ("sent", 1, 2)
