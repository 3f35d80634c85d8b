"""At the default size limit (INGEST_MAX_MESSAGE_BYTES, 25 MiB) a 25 MB attachment, about 34 MB in base64, is
refused with a clear 552 and nothing is published; the same mail under a raised limit is stored end to end
(tests/e2e/test_hostile_mail.py)."""

import pytest

from mailstream_common import topology
from mailstream_ingest.settings import IngestSettings
from tests.ingest.conftest import add_stream, queue_depth, run_ingest
from tests.ingest.smtp_client import send
from tests.support import hostile_mail

pytestmark = pytest.mark.integration


async def test_a_25_mb_attachment_is_refused_552_at_the_default_limit(vhost, mongo_db, backends):
    assert IngestSettings.model_fields["max_message_bytes"].default == 25 * 1024 * 1024
    async with run_ingest(vhost[1], mongo_db, backends.mongodb_uri, INGEST_ROLE="smtp") as running:
        stream = await add_stream(mongo_db)
        raw = hostile_mail.large_attachment()
        result = await send(running.smtp_port, "attacker@hostile.example", [stream["forwarding_address"]], raw)
        assert result.data is not None and result.data[0] == 552, result.data
        assert b"Too much mail data" in result.data[1]
        assert await queue_depth(running.amqp_url, topology.INGEST_ANALYSE.name) == 0
        assert not running.task.done()
