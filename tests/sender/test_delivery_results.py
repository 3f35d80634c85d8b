"""Reading relay replies: queue ids, stated retry delays, and temporary vs permanent outcomes. Pure."""

import pytest

from mailstream_sender.delivery import SendResult, parse_queue_id, parse_retry_after


@pytest.mark.parametrize(
    ("reply", "queue_id"),
    [
        ("2.0.0 Ok: queued as 4Xk2Lm0qZbz9", "4Xk2Lm0qZbz9"),  # Postfix
        ("OK id=1rABcD-0007xy-3Q", "1rABcD-0007xy-3Q"),  # Exim
        ("2.0.0 OK  1700000000 d9443c01a7336-1e4c5f0a3b5sm123456plb.90 - gsmtp", None),
        ("2.0.0 Ok", None),  # smtp-sink names none
    ],
)
def test_queue_id_from_the_250_reply(reply, queue_id):
    assert parse_queue_id(reply) == queue_id


@pytest.mark.parametrize(
    ("reply", "seconds"),
    [
        ("4.7.0 Try again in 120 seconds", 120),
        ("4.3.2 Service busy, retry after 5 minutes", 300),
        ("4.7.1 Greylisted, please try again later", None),
        ("4.4.5 Insufficient system storage", None),
        ("Retry in 30s", 30),
    ],
)
def test_retry_delay_a_server_asks_for(reply, seconds):
    assert parse_retry_after(reply) == seconds


@pytest.mark.parametrize(
    ("code", "outcome"),
    [
        (250, "sent"),
        (251, "sent"),
        (421, "temporary"),
        (451, "temporary"),
        (452, "temporary"),
        (550, "permanent"),
        (552, "permanent"),
        (554, "permanent"),
    ],
)
def test_reply_codes_decide_between_temporary_and_permanent(code, outcome):
    assert SendResult.from_reply(code, "text").outcome == outcome


def test_result_detail_names_code_reply_and_refused_recipients():
    result = SendResult.from_reply(250, "2.0.0 Ok: queued as ABC", ("cc@example.net",))
    assert result.sent and result.relay_queue_id == "ABC"
    assert result.detail == "250 2.0.0 Ok: queued as ABC (refused: cc@example.net)"
    assert SendResult.unreachable("relay down").detail == "relay down"
    assert SendResult.from_reply(451, "4.7.0 try again in 10 seconds").retry_after == 10
