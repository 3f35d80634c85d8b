"""The service as wired by `main`: its ops endpoints and metrics, and `python -m mailstream_ingest` as a real process
(ready, one JSON log line per mail with its correlation id, no secrets in the log, a clean exit on SIGTERM)."""

import json
import smtplib

import httpx
import pytest

from mailstream_common import topology
from tests.ingest.conftest import INBOUND_DOMAIN, VERP_SECRET, add_stream, take_messages
from tests.ingest.smtp_client import send
from tests.support.processes import ServiceProcess, free_port
from tests.support.waiting import wait_for_sync

pytestmark = pytest.mark.integration

SIMPLE = b"From: Jane <jane@customer.example>\r\nTo: support@acme.example\r\nSubject: hi\r\n\r\nHello\r\n"


async def test_real_process_logs_each_mail_and_stops_cleanly(vhost, mongo_db, backends, tmp_path):
    stream = await add_stream(mongo_db)
    smtp_port, ops_port = free_port(), free_port()
    env = {
        "AMQP_URL": vhost[1],
        "MONGODB_URI": backends.mongodb_uri,
        "MONGODB_DATABASE": mongo_db.name,
        "MAILSTREAM_VERP_SECRET": VERP_SECRET,
        "MAILSTREAM_INBOUND_DOMAIN": INBOUND_DOMAIN,
        "INGEST_SMTP_PORT": str(smtp_port),
        "INGEST_OPS_PORT": str(ops_port),
        "DNS_NAMESERVERS": "127.0.0.1:1",
        "INGEST_DNS_TIMEOUT_SECONDS": "0.2",
        "SHUTDOWN_GRACE_SECONDS": "5",
    }
    process = ServiceProcess("ingest", "mailstream_ingest", env, f"http://127.0.0.1:{ops_port}", tmp_path)
    process.start()
    try:
        with smtplib.SMTP("127.0.0.1", smtp_port, timeout=30) as client:
            client.sendmail("jane@customer.example", [stream["forwarding_address"]], b"Subject: hi\r\n\r\nHello\r\n")
            assert client.noop()[0] == 250
        wait_for_sync(
            lambda: '"mail analysed"' in process.log_path.read_text(), timeout=30, what="the analysis log line"
        )
    finally:
        assert process.stop() == 0
    lines = [json.loads(line) for line in process.log_path.read_text().splitlines() if line.startswith("{")]
    accepted = [line for line in lines if line["message"] == "mail accepted"]
    assert len(accepted) == 1
    assert accepted[0]["correlation_id"] == accepted[0]["mail_id"]
    analysed = [line for line in lines if line["message"] == "mail analysed"]
    assert analysed and analysed[0]["correlation_id"] == accepted[0]["mail_id"]
    text = process.log_path.read_text()
    assert VERP_SECRET not in text
    assert vhost[1] not in text  # the AMQP URL carries the password


async def test_ops_endpoints_and_metrics(smtp_only, mongo_db):
    stream = await add_stream(mongo_db)
    result = await send(
        smtp_only.smtp_port, "a@b.example", [stream["forwarding_address"], f"x@{INBOUND_DOMAIN}"], SIMPLE
    )
    async with httpx.AsyncClient(base_url=smtp_only.ops_url) as client:
        assert (await client.get("/healthz")).status_code == 200
        ready = (await client.get("/readyz")).json()
        assert ready["checks"] == {"broker": True, "smtp_listener": True}
        metrics = (await client.get("/metrics")).text
    assert 'mailstream_ingest_refused_total{reason="unknown_recipient"}' in metrics
    assert "mailstream_ingest_mails_accepted_total" in metrics
    assert "mailstream_ingest_durable_confirm_seconds_bucket" in metrics
    await take_messages(smtp_only.amqp_url, topology.INGEST_ANALYSE.name, 1, correlation_ids={result.mail_id})
