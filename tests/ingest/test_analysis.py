"""Whatever bytes arrive, the analysis never raises: fixtures cut, spliced and corrupted at random (seeded)."""

import random
from datetime import UTC, datetime

import pytest
from pydantic_core import PydanticSerializationError

from mailstream_common.contracts import MailReceived
from mailstream_common.contracts.mail import AuthenticationResult, StreamTarget
from mailstream_ingest.analysis import analyse, from_domain, scrubbed
from mailstream_ingest.bounce_reports import parse_bounce
from mailstream_ingest.confirmations import detect_forwarding_test, detect_provider_confirmation
from mailstream_ingest.forwards import detect_forward
from mailstream_ingest.parsing import parse_mail
from mailstream_ingest.reception import build_mail_received
from tests.ingest.fixtures import MAIL_DIR, OWNER, eml

FIXTURES = sorted(p.read_bytes() for p in MAIL_DIR.glob("*.eml"))


def _mutations(seed: int) -> list[bytes]:
    rng = random.Random(seed)
    out = []
    for raw in FIXTURES:
        data = bytearray(raw)
        for _ in range(rng.randint(1, 20)):
            if not data:
                break
            position = rng.randrange(len(data))
            action = rng.random()
            if action < 0.4:
                data[position] = rng.randrange(256)
            elif action < 0.7:
                del data[position : position + rng.randint(1, 200)]
            else:
                data[position:position] = rng.choice(
                    [b"\r\n", b"--", b"=?", b"?=", b"\x1b$B", b"\xff\xfe", b"\r\n\r\n", b";"]
                )
        out.append(bytes(data))
        out.append(raw[: rng.randrange(len(raw))])  # cut short, as a dropped connection would leave it
    return out


@pytest.mark.parametrize("seed", range(40))
def test_mutated_mail_is_analysed_without_raising(seed):
    for raw in _mutations(seed):
        parsed = parse_mail(raw)
        assert isinstance(parsed.text, str) and isinstance(parsed.warnings, list)
        detect_forward(parsed, {OWNER})
        detect_provider_confirmation(parsed)
        detect_forwarding_test(parsed)
        parse_bounce(parsed, "", "bounce+x@in.mailstream.test")
        outcome = analyse(_received(raw), parsed, AuthenticationResult())
        assert outcome.analysed is not None
        outcome.analysed.model_dump_json(by_alias=True)  # what the broker sends: must be valid JSON text


def _received(raw: bytes) -> MailReceived:
    target = StreamTarget(
        forwarding_address="f@in.mailstream.test", stream_id="s", account_id="a", stream_address=OWNER
    )
    return build_mail_received(
        mail_id="0" * 32, received_at=datetime.now(UTC), raw=raw, mail_from="", rcpt_to=["f@in.mailstream.test"],
        targets=[target], bounce_tokens=["abc"], client_ip=None, helo=None, tls=False,
    )  # fmt: skip


def test_8bit_garbage_in_every_header_still_serialises():
    raw = b"".join(
        name + b": \xff\xfe\x80 <\xe9@x\xff.example> \x1b$B\r\n"
        for name in (b"From", b"To", b"Cc", b"Reply-To", b"Subject", b"Date", b"Message-ID", b"Content-ID",
                     b"Content-Disposition", b"Resent-From", b"X-Forwarded-For")
    ) + b"Content-Type: text/plain; charset=\xff\r\n\r\nbody \xff\r\n"  # fmt: skip
    outcome = analyse(_received(raw), parse_mail(raw), AuthenticationResult())
    assert outcome.analysed is not None
    outcome.analysed.model_dump_json(by_alias=True)


def test_scrubbed_event_serialises():
    outcome = analyse(
        _received(b"Subject: x\r\n\r\nbody\r\n"), parse_mail(b"Subject: x\r\n\r\nbody\r\n"), AuthenticationResult()
    )
    broken = outcome.analysed.model_copy(update={"subject": "caf\udce9", "text": "a\ud800b"})
    with pytest.raises(PydanticSerializationError):
        broken.model_dump_json()
    fixed = scrubbed(broken)
    assert (fixed.subject, fixed.text) == ("caf\ufffd", "a\ufffdb")
    assert fixed.raw == broken.raw and fixed.mail_id == broken.mail_id
    fixed.model_dump_json()


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (b"From: Jane <jane@Customer.Example>", "customer.example"),
        (b"From: jane@sub.customer.example", "sub.customer.example"),
        (b"From: Jane", None),
        (b"X-No-From: x", None),
    ],
)
def test_from_domain(header, expected):
    assert from_domain(parse_mail(header + b"\r\nSubject: x\r\n\r\nbody\r\n")) == expected


def test_forward_as_attachment_shows_the_customers_words_and_keeps_the_note_apart():
    raw = eml("attached_forward.eml")
    analysed = analyse(_received(raw), parse_mail(raw), AuthenticationResult()).analysed
    assert analysed is not None and analysed.forwarded is not None
    assert analysed.customer is not None and analysed.customer.address == "dana@customer.example"
    assert analysed.text.strip() == "The box was crushed and the item inside is broken."
    assert analysed.forwarded.note == "See attached."
    assert analysed.html is None  # the note had no HTML, and the attached message has none either
