"""The export archive, pure (`mailstream_inbox.data_export`): mboxrd framing and quoting, one zip, same bytes for
the same input."""

import io
import json
import mailbox
import zipfile
from datetime import UTC, datetime

from mailstream_inbox import data_export

T0 = datetime(2026, 12, 5, 3, 0, tzinfo=UTC)


def test_the_mbox_keeps_each_message_apart_and_quotes_from_lines(tmp_path):
    raws = [
        (T0, b"Message-ID: <a@x>\r\nSubject: one\r\n\r\nFrom the start\r\n>From quoted once\r\n"),
        (T0, b"Message-ID: <b@x>\r\nSubject: two\r\n\r\nno newline at the end"),
    ]
    data = data_export.mbox_of(raws)
    assert data.startswith(b"From MAILER-DAEMON Sat Dec 05 03:00:00 2026\n")
    assert b"\n>From the start\n>>From quoted once\n" in data
    (tmp_path / "box").write_bytes(data)
    box = mailbox.mbox(tmp_path / "box")
    assert [m["Message-ID"] for m in box] == ["<a@x>", "<b@x>"]
    assert data_export.mbox_of([]) == b""


def test_the_archive_holds_the_mbox_and_the_records_and_is_reproducible():
    records = {"sender": {"deliveries": [{"_id": "m1", "at": T0}]}, "domains": {}}
    first = data_export.archive_of(b"From x\n", records, made_at=T0)
    assert data_export.archive_of(b"From x\n", records, made_at=T0) == first
    with zipfile.ZipFile(io.BytesIO(first)) as archive:
        assert archive.namelist() == ["messages.mbox", "records.json"]
        document = json.loads(archive.read("records.json"))
    assert document["records"]["sender"]["deliveries"] == [{"_id": "m1", "at": str(T0)}]
