"""The archive of a data export (GDPR Art. 20), pure: the person's mail as one mbox, and every record that names
them, by service and kind, as JSON, in one zip file.

The mbox is "mboxrd": each message starts with a `From ` line, and a body line that starts with `From ` (after any
number of `>`) gets one more `>`, so that every reader splits the messages where they were and can undo the quoting.
"""

import io
import json
import re
import zipfile
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

_FROM_LINE = re.compile(rb"^(>*From )", re.MULTILINE)


def mbox_of(messages: Iterable[tuple[datetime, bytes]]) -> bytes:
    """The messages (when each was received, its raw bytes) as one mboxrd file, in the given order."""
    out = io.BytesIO()
    for received_at, raw in messages:
        when = received_at.astimezone(UTC).strftime("%a %b %d %H:%M:%S %Y")
        body = raw.replace(b"\r\n", b"\n")
        out.write(f"From MAILER-DAEMON {when}\n".encode())
        out.write(_FROM_LINE.sub(rb">\1", body))
        if not body.endswith(b"\n"):
            out.write(b"\n")
        out.write(b"\n")
    return out.getvalue()


def archive_of(mbox: bytes, records: Mapping[str, Mapping[str, list[dict[str, Any]]]], *, made_at: datetime) -> bytes:
    """One zip: `messages.mbox` and `records.json` ({service: {kind: [record, ...]}}).

    The same input gives the same bytes (the entries are dated `made_at`, not now), so two workers building the
    archive at once store identical chunks."""
    out = io.BytesIO()
    stamp = made_at.astimezone(UTC).timetuple()[:6]
    document = {"made_at": made_at.isoformat(), "records": records}
    entries = (
        ("messages.mbox", mbox),
        ("records.json", json.dumps(document, indent=2, default=str, ensure_ascii=False).encode()),
    )
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=stamp)
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    return out.getvalue()
