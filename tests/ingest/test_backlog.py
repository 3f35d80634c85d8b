"""Back-pressure at the front door (issue 12): above the backlog limit new mail gets 451 at MAIL FROM, nothing that
got a 250 is lost, and mail is accepted again once the backlog has drained below the lower mark.

The gate's decision is a plain function (first tests); the last test runs ingest for real, over SMTP, against a
private RabbitMQ vhost whose `ingest.analyse` queue nobody consumes, so the backlog is real and grows mail by mail.
"""

import httpx
import pytest

from mailstream_common import topology
from mailstream_ingest.backlog import BacklogGate
from tests.ingest.conftest import add_stream, queue_depth, run_ingest, take_messages
from tests.ingest.smtp_client import send
from tests.support.waiting import wait_for


def test_the_gate_shuts_above_the_limit_and_opens_only_below_the_lower_mark():
    gate = BacklogGate(limit=100)
    assert gate.observe({"ingest.analyse": 60, "inbox.store": 40}) is False and not gate.shut  # at the limit: open
    assert gate.observe({"ingest.analyse": 60, "inbox.store": 41}) is True and gate.shut
    assert gate.observe({"ingest.analyse": 50, "inbox.store": 31}) is False and gate.shut  # 81: still draining
    assert gate.observe({"ingest.analyse": 50, "inbox.store": 30}) is True and not gate.shut  # 80: open again


def test_a_limit_of_zero_never_shuts():
    gate = BacklogGate(limit=0)
    assert gate.observe({"ingest.analyse": 10**9}) is False and not gate.shut


RAW = b"From: Jane <jane@customer.example>\r\nTo: support@acme.example\r\nSubject: burst\r\n\r\nHello\r\n"


async def _refusing(ops_url: str) -> bool:
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"{ops_url}/metrics", timeout=2)).text
    return "mailstream_ingest_backlog_refusing 1.0" in text


@pytest.mark.integration
async def test_a_backlog_above_the_limit_gets_451_at_mail_from_and_drains_back_to_250(vhost, mongo_db, backends):
    amqp_url = vhost[1]
    async with run_ingest(
        amqp_url,
        mongo_db,
        backends.mongodb_uri,
        INGEST_ROLE="smtp",  # nobody analyses: what ingest accepts stays on ingest.analyse
        INGEST_BACKLOG_LIMIT=3,
        INGEST_BACKLOG_CHECK_SECONDS=0.1,
    ) as running:
        stream = await add_stream(mongo_db)
        rcpt = [stream["forwarding_address"]]
        baseline = await queue_depth(amqp_url, topology.INGEST_ANALYSE.name)
        assert baseline == 0, "the vhost is private to this module; nothing else fills the queue"

        accepted = [(await send(running.smtp_port, "jane@customer.example", rcpt, RAW)).mail_id for _ in range(4)]
        await wait_for(lambda: _refusing(running.ops_url), timeout=15, what="the gate to shut above 3 waiting")

        refused = await send(running.smtp_port, "jane@customer.example", rcpt, RAW)
        assert refused.mail is not None and refused.mail[0] == 451 and b"4.3.2" in refused.mail[1]
        assert refused.data is None  # refused before the mail was transmitted

        # Drain to the lower mark (int(3 * 0.8) = 2): take two, the oldest first.
        taken = await take_messages(amqp_url, topology.INGEST_ANALYSE.name, 2, correlation_ids=set(accepted[:2]))

        async def accepting() -> bool:
            return not await _refusing(running.ops_url)

        await wait_for(accepting, timeout=15, what="the gate to open once the backlog is 2")
        after = await send(running.smtp_port, "jane@customer.example", rcpt, RAW)
        accepted.append(after.mail_id)

        # Nothing that got a 250 was lost or doubled; the refused attempt left nothing behind.
        rest = await take_messages(amqp_url, topology.INGEST_ANALYSE.name, 3, correlation_ids=set(accepted[2:]))
        assert sorted(m.correlation_id for m in taken + rest) == sorted(accepted)
        assert await queue_depth(amqp_url, topology.INGEST_ANALYSE.name) == 0
